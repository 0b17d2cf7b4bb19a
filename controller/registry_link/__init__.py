"""The site controller's link to the national HSC registry: one client over `registry.contract.v1.DpcPort` (two
transports), a durable outbox for submissions, the mirror of the registry's decisions, and the power gate that
applies quota.rights to the live fleet."""
