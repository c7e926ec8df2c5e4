"""Karbon sandbox: a faithful simulator of the Karbon v3 endpoints Reckonry reads.

* :func:`app.sandbox.generator.generate_firm` / :func:`~app.sandbox.generator.advance_firm`:
  deterministic simulated firms as plain dataclasses (:mod:`app.sandbox.model`).
* :class:`app.sandbox.state.Sandbox`: tenants (keys, firm, counters) and run-time configuration.
* :func:`app.sandbox.app.create_sandbox_app`: the FastAPI app (Karbon endpoints + ``/_sandbox``).
* :func:`app.sandbox.server.serve_sandbox_in_thread`: a real socket for integration tests.
* :func:`app.sandbox.cli.sandbox_command`: ``reckonry sandbox``.
"""
