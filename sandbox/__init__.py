"""Karbon sandbox: a faithful simulator of the Karbon v3 endpoints Reckonry reads.

* :func:`sandbox.generator.generate_firm` / :func:`~sandbox.generator.advance_firm`:
  deterministic simulated firms as plain dataclasses (:mod:`sandbox.model`).
* :class:`sandbox.state.Sandbox`: tenants (keys, firm, counters) and run-time configuration.
* :func:`sandbox.app.create_sandbox_app`: the FastAPI app (Karbon endpoints + ``/_sandbox``).
* :func:`sandbox.server.serve_sandbox_in_thread`: a real socket for integration tests.
* :func:`sandbox.cli.sandbox_command`: ``reckonry sandbox``.
"""
