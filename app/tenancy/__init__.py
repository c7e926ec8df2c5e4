"""Tenants, people and integrator keys, sign-in, the Karbon connection and the trial clock."""
