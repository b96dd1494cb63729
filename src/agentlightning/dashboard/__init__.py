"""The Streamlit dashboard (``agentlightning dashboard``): a client of the public HTTP API only."""
