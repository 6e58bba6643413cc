"""What the notebooks and the demo call: parameters, display helpers, data exploration, replay, video, the demo."""
