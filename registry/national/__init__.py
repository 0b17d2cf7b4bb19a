"""The national HSC registry: one registry for many DPCs (applications, decisions, sightings, violation episodes,
per-DPC change feed, signed audit chain). The site-era single-DPC registry (registry.service) stays for the
controller's embedded mode until the controller follows the feed only."""
