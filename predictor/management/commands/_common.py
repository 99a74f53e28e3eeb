"""Shared bits of the management commands: who is acting, and a version table."""

import getpass
import os


def cli_actor() -> str:
    """The audit trail's name for whoever ran a command: 'cli:<login>'."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        login = os.environ.get("USER", "unknown")
    return f"cli:{login}"


def format_metrics(version) -> str:
    return (
        f"R² test {version.r2_test:.4f}, MSE test {version.mse_test:.1f}, MAE test {version.mae_test:.1f}, "
        f"R² train {version.r2_train:.4f}; slope {version.slope:.4f}, intercept {version.intercept:.4f}; "
        f"{version.n_train} train / {version.n_test} test rows; {version.n_epochs} epochs"
    )
