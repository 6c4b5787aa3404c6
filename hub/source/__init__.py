"""Where fleet configuration comes from: Git.

* :mod:`hub.source.git` — a bare mirror of the fleet repository in the hub's data
  directory: fetch (with SSH-key or HTTPS-token auth that never reaches logs or
  disk), resolve the tracked branch/tag/commit, ancestry checks for the
  forward-only rule, signed-commit verification (SSH allowed-signers or a GPG
  keyring) and a :class:`~hub.tree.repofs.RepoFS` view of any commit.
* :mod:`hub.source.webhooks` — push-webhook authentication for GitHub, GitLab,
  Gitea and a generic HMAC sender.
"""
