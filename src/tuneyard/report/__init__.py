"""Reports: training curves, weight spectra, grid heatmaps and run comparisons as PNGs."""
