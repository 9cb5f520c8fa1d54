"""cloudfree: turn cloudy Sentinel-2 time series into cloud-free ones."""

__version__ = "0.1.0"
