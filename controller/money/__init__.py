"""The controller's money side: storage of imported inputs (with provenance and a hash chain), the services that
compute values, income, sale shares, fees and the meter reconciliation from them (money/, pure), the monthly
reports (CSV, XLSX) and the HTTP API. See docs/money.md."""
