"""The application layer: the one engine under every front door (the CLI's `generate` and
`retry`, the service's workers). A request is planned into jobs, quoted against the ledger, and
run; front doors parse their input into a request and render the results."""
