//! Records `git describe` for the code version every run prints. A build without
//! the git history (the container image's) passes it in `MQ_SIM_GIT_DESCRIBE`.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MQ_SIM_GIT_DESCRIBE");
    let given = std::env::var("MQ_SIM_GIT_DESCRIBE").ok().filter(|d| !d.trim().is_empty());
    let describe = given.unwrap_or_else(describe);
    println!("cargo:rustc-env=MQ_SIM_GIT_DESCRIBE={describe}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
}

fn describe() -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty", "--tags"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}
