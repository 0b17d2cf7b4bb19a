"""The national registry's versioned API for DPCs (site controllers): `registry.contract.v1`."""
