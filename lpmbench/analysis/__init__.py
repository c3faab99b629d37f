"""Pure functions over results: building a result, the checks, the LPM model, units, comparisons."""
