//! The last good vendor answers, kept on disk so a restart while a vendor is
//! unreachable still serves with the last keys.
//!
//! One file per (vendor account, domain), written atomically: a temp file in
//! the same directory, fsync, rename over the old file, fsync the directory.
//! Files are mode 0600: they hold keys.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The state directory (or none: nothing is kept).
#[derive(Debug, Clone, Default)]
pub struct StateDir {
    dir: Option<PathBuf>,
}

/// File names keep only these characters; anything else becomes `_`.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl StateDir {
    /// Keeps state in `dir` (created if missing), or nowhere.
    pub fn new(dir: Option<PathBuf>) -> Self {
        StateDir { dir }
    }

    /// `{dir}/{vendor}/{domain}.json`: one folder per account, so no two
    /// (vendor, domain) pairs can map to the same file.
    pub fn path(&self, vendor: &str, domain: &str) -> Option<PathBuf> {
        Some(
            self.dir
                .as_ref()?
                .join(clean(vendor))
                .join(format!("{}.json", clean(domain))),
        )
    }

    /// Saves a vendor answer atomically with mode 0600.
    pub fn save(&self, vendor: &str, domain: &str, body: &[u8]) -> std::io::Result<()> {
        match self.path(vendor, domain) {
            Some(path) => write_private(&path, body),
            None => Ok(()),
        }
    }

    /// `{dir}/{vendor}/rotations/`: the key rotation records of an account.
    /// No answer file can be there: answer files end in `.json`.
    pub fn rotations(&self, vendor: &str) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(clean(vendor)).join("rotations"))
    }

    /// `{dir}/{vendor}/rotations/{domain}.json`: one rotation record.
    pub fn rotation_path(&self, vendor: &str, domain: &str) -> Option<PathBuf> {
        Some(
            self.rotations(vendor)?
                .join(format!("{}.json", clean(domain))),
        )
    }

    /// The saved answer, if any, and when it was saved (unix seconds).
    pub fn load(&self, vendor: &str, domain: &str) -> Option<(Vec<u8>, Option<u64>)> {
        let path = self.path(vendor, domain)?;
        let body = std::fs::read(&path).ok()?;
        let saved = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        Some((body, saved))
    }
}

/// Writes `body` to `path` atomically with mode 0600, creating the
/// directory: a temp file in the same directory, fsync, rename, fsync the
/// directory.
pub fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    std::fs::create_dir_all(dir)?;
    // A name of our own: two processes sharing the directory never write
    // the same temp file.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("json.{}.{seq}.tmp", std::process::id()));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Makes the rename durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()?;
    }
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_atomically_with_private_mode() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(Some(d.path().join("state")));
        s.save("tencent-main", "play.example.com", b"{\"a\":1}")
            .unwrap();
        s.save("tencent-main", "play.example.com", b"{\"a\":2}")
            .unwrap();
        assert_eq!(
            s.load("tencent-main", "play.example.com").unwrap().0,
            b"{\"a\":2}"
        );
        let path = d.path().join("state/tencent-main/play.example.com.json");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(
            std::fs::read_dir(d.path().join("state")).unwrap().count(),
            1,
            "temp file left behind"
        );
        assert!(s.load("tencent-main", "other").is_none());
        assert_eq!(clean("../x y"), ".._x_y");
        assert!(StateDir::new(None).save("a", "b", b"c").is_ok());
    }
}
