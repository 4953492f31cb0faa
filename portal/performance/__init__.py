"""Regional performance: targets, figures per region, territory and partner, flags."""
