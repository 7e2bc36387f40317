"""Camera side: read frames, detect and align faces locally, stream ALIGNED crops, show the decisions."""
