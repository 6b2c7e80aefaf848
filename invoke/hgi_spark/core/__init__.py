"""What every part of the library shares: errors, files, layout, YAML layers, variables.tf types,
configuration, secrets, locks and tables."""
