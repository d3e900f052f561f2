"""Speed benchmarks behind `biax benchmark <what>`; each module has add_arguments and run."""
