"""Panel page modules (views). Installed as ``llmgw_kernel.dashboards``; see llmgw_kernel/dashboard/pages.py."""
