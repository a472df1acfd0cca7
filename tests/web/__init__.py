"""Browser tests: the demo pages and the JS client in headless Chromium."""
