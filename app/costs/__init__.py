"""Cost assumptions: per-tenant settings and effective-dated staff compensation."""
