"""Quota in the controller: inputs persisted with provenance, the control loop, dispatch, ledger and API."""
