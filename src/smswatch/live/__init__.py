"""The running engine: listener + gateways + store + hub, its thread, the local data
source, headless `serve`, metrics."""
