"""What users run: the `biax` command line, the studio page, `biax render`, `biax evaluate`."""
