"""Video and live cameras: frame sources, plate tracking, one fused read per vehicle."""
