"""Kuat HSC registry: licensees, DPCs, accredited pools and machines (HSCs), a hash-chained audit trail,
continuous compliance, and its HTTP API. See docs/registry.md.

The seam for the controller:
- `registry.db`: make_engine(url), init_db(engine) (Alembic to head), session_factory(engine);
- `registry.service.RegistryService`: record_sightings, approve / bulk_approve, CRUD, check_compliance,
  violations, noncompliant_device_ids / noncompliant_serials, verify_audit;
- `registry.api.install(app, service)`: mounts the router (/api/v1/registry/..., /api/v1/compliance/...);
- `registry.auth.require_role(...)`: API-key roles; `registry.app.create_app(settings)`: the standalone service;
- `registry.outbox`: queued, idempotent submissions to a remote registry.
"""
