"""Scripts the fault tests run in a child interpreter."""
