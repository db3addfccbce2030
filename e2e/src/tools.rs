//! External tools the tests drive (helm, kubectl): found in `.tools/bin` (where
//! `scripts/ensure-deps.sh` installs them) or on PATH, with a clear error otherwise.

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// Path of `tool` (`helm`, `kubectl`).
pub fn tool(name: &str) -> anyhow::Result<PathBuf> {
    let local = repo_root().join(".tools/bin").join(name);
    if local.exists() {
        return Ok(local);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.exists())
        })
        .unwrap_or(None);
    on_path.ok_or_else(|| {
        anyhow::anyhow!(
            "{name} not found in .tools/bin or PATH: run scripts/ensure-deps.sh (make test does)"
        )
    })
}

/// Runs a tool and returns stdout, or an error with its stderr.
pub fn run(name: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(tool(name)?)
        .args(args)
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "{name} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
