"""`exportctl`: the command line of the durable export API (start, watch, list, download...)."""
