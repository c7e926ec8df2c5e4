from httpx import AsyncClient

PROBLEM = "application/problem+json"
PUBLIC = {
    "/api/v1/signup",
    "/api/v1/auth/token",
    "/api/v1/auth/password-reset",
    "/api/v1/auth/password-reset/confirm",
    "/api/v1/invitations/accept",
    "/api/v1/billing/stripe-webhook",
}
OURS = (
    "/api/v1/signup",
    "/api/v1/auth",
    "/api/v1/me",
    "/api/v1/members",
    "/api/v1/api-keys",
    "/api/v1/karbon",
    "/api/v1/ops/tenants",
    "/api/v1/invitations",
    "/api/v1/billing",
)


async def test_every_tenancy_operation_documents_its_errors(client: AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operations = [
        (path, method, operation)
        for path, item in spec["paths"].items()
        if path.startswith(OURS)
        for method, operation in item.items()
    ]
    assert len(operations) >= 14
    for path, method, operation in operations:
        errors = {code: r for code, r in operation["responses"].items() if code >= "400"}
        assert errors, (method, path)
        for code, response in errors.items():
            assert PROBLEM in response["content"], (method, path, code)
            assert "`" in response["description"], (method, path, code)  # names its types
        if path not in PUBLIC:
            assert {"401", "403"} <= errors.keys(), (method, path)
            assert operation["security"], (method, path)


async def test_the_credentials_operation_explains_each_karbon_outcome(
    client: AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    put = spec["paths"]["/api/v1/karbon/credentials"]["put"]
    described = " ".join(r["description"] for r in put["responses"].values())
    for slug in (
        "invalid-credentials-format",
        "karbon-rejected-access-key",
        "karbon-rejected-bearer-token",
        "karbon-rejected-unknown",
        "karbon-unavailable",
    ):
        assert slug in described
    sign_in = spec["paths"]["/api/v1/auth/token"]["post"]
    assert "429" in sign_in["responses"]
