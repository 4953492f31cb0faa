"""Partner-channel portal: the app factory lives in :mod:`portal.app`."""
