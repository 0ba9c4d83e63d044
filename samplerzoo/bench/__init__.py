"""The benchmark harness: sweep samplers x schedules x NFE on a checkpoint into FID/KID results."""
