//! The domain blocklist file (`OFFNDAT_BLOCKLIST_FILE`): one domain a line, `#`
//! comments, subdomains included; re-read every second, and a file that does not
//! parse keeps the previous list (and is logged).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use offndat_application::ports::TargetBlocklist;
use offndat_domain::target_host;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::postgres::PgAuditLog;

/// The audit actor of blocklist changes: the file, not a key.
pub const BLOCKLIST_ACTOR: &str = "OFFNDAT_BLOCKLIST_FILE";

/// Domains named in an audit row's `added` or `removed`, at most.
const AUDITED_DOMAINS: usize = 20;

/// Why a blocklist file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BlocklistError {
    #[error("cannot read the blocklist {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("blocklist {path}, line {line}: `{entry}` is not a domain")]
    Entry { path: PathBuf, line: usize, entry: String },
}

/// The domains of a blocklist file, normalised like target hosts.
pub fn parse(path: &Path, contents: &str) -> Result<HashSet<String>, BlocklistError> {
    let mut domains = HashSet::new();
    for (index, line) in contents.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        // `*.example.com` says what every line means anyway: the domain and below.
        let domain = entry.strip_prefix("*.").unwrap_or(entry);
        let normalised = target_host::normalise_input(domain).filter(|d| !d.starts_with('['));
        match normalised {
            Some(domain) => domains.insert(domain),
            None => {
                return Err(BlocklistError::Entry { path: path.to_owned(), line: index + 1, entry: entry.to_owned() });
            }
        };
    }
    Ok(domains)
}

/// A blocklist read from a file and kept current.
pub struct FileBlocklist {
    path: PathBuf,
    state: RwLock<State>,
}

struct State {
    contents: String,
    domains: Arc<HashSet<String>>,
}

impl FileBlocklist {
    /// Reads `path`; a start with a broken file fails, like any bad setting.
    pub fn load(path: &Path) -> Result<Arc<Self>, BlocklistError> {
        let contents = read(path)?;
        let domains = Arc::new(parse(path, &contents)?);
        tracing::info!(path = %path.display(), domains = domains.len(), "blocklist loaded");
        Ok(Arc::new(Self { path: path.to_owned(), state: RwLock::new(State { contents, domains }) }))
    }

    /// The domains in force.
    pub fn domains(&self) -> Arc<HashSet<String>> {
        self.state.read().map(|s| s.domains.clone()).unwrap_or_default()
    }

    /// Re-reads the file; `Ok(true)` when the list changed. On an error the
    /// previous list stays in force.
    pub fn reload(&self) -> Result<bool, BlocklistError> {
        Ok(self.reload_changes()?.is_some())
    }

    /// Re-reads the file; the previous domains when the list changed.
    fn reload_changes(&self) -> Result<Option<Arc<HashSet<String>>>, BlocklistError> {
        let contents = read(&self.path)?;
        if self.state.read().is_ok_and(|s| s.contents == contents) {
            return Ok(None);
        }
        let domains = Arc::new(parse(&self.path, &contents)?);
        let previous = self.domains();
        if let Ok(mut state) = self.state.write() {
            *state = State { contents, domains };
        }
        Ok(Some(previous))
    }

    /// The audit detail of the list in force, compared with `previous`: the
    /// file, how many domains, a fingerprint of the list, and (some of) the
    /// domains added and removed.
    fn change_detail(&self, previous: &HashSet<String>) -> (String, serde_json::Value) {
        let domains = self.domains();
        let mut sorted: Vec<&String> = domains.iter().collect();
        sorted.sort();
        let mut hasher = Sha256::new();
        for domain in &sorted {
            hasher.update(domain.as_bytes());
            hasher.update(b"\n");
        }
        let fingerprint: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let listed = |from: &HashSet<String>, without: &HashSet<String>| {
            let mut names: Vec<&String> = from.difference(without).collect();
            names.sort();
            names.into_iter().take(AUDITED_DOMAINS).cloned().collect::<Vec<_>>()
        };
        let detail = json!({
            "file": self.path.display().to_string(),
            "domains": domains.len(),
            "sha256": fingerprint,
            "added": listed(&domains, previous),
            "removed": listed(previous, &domains),
        });
        (fingerprint, detail)
    }

    /// Writes a `blocklist.changed` audit row for the list in force, unless the
    /// newest one already records it (every replica sees the same change).
    async fn audit(&self, audit: &PgAuditLog, previous: &HashSet<String>) {
        let (fingerprint, detail) = self.change_detail(previous);
        if let Err(error) = audit.record_blocklist(BLOCKLIST_ACTOR, &fingerprint, detail).await {
            tracing::warn!(%error, "cannot write the blocklist change to the audit log");
        }
    }

    /// Re-reads the file every `interval` until `stop`, auditing each change (and,
    /// first, the list loaded at start, which may have changed while no process
    /// ran). Polling the contents rather than watching for events also sees
    /// editors' rename-over-writes, Kubernetes ConfigMap symlink swaps and changes
    /// within one mtime tick.
    pub async fn watch(self: Arc<Self>, interval: Duration, audit: PgAuditLog, stop: CancellationToken) {
        // The file as it is now, not as it was at start, so a replica starting
        // late cannot record an older list after a newer one.
        if let Err(error) = self.reload() {
            tracing::error!(%error, "blocklist not reloaded; the previous list stays in force");
        }
        self.audit(&audit, &HashSet::new()).await;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut broken = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.reload_changes() {
                Ok(changed) => {
                    if let Some(previous) = changed {
                        tracing::info!(path = %self.path.display(), domains = self.domains().len(), "blocklist reloaded");
                        self.audit(&audit, &previous).await;
                    }
                    broken = false;
                }
                Err(error) if !broken => {
                    broken = true;
                    tracing::error!(%error, "blocklist not reloaded; the previous list stays in force");
                }
                Err(_) => {}
            }
        }
    }
}

fn read(path: &Path) -> Result<String, BlocklistError> {
    std::fs::read_to_string(path).map_err(|source| BlocklistError::Read { path: path.to_owned(), source })
}

/// The listed domain `host` is or is under, among `domains`.
pub fn matching(domains: &HashSet<String>, host: &str) -> Option<String> {
    let mut candidate = host;
    loop {
        if domains.contains(candidate) {
            return Some(candidate.to_owned());
        }
        candidate = candidate.split_once('.')?.1;
    }
}

impl TargetBlocklist for FileBlocklist {
    fn blocked_by(&self, host: &str) -> Option<String> {
        matching(&self.domains(), host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_and_subdomains() {
        let path = Path::new("blocklist.txt");
        let domains =
            parse(path, "# take-downs\nEvil.Example.  # reported\n\n*.phish.test\nbücher.example\n").expect("parses");
        assert_eq!(matching(&domains, "evil.example"), Some("evil.example".to_owned()));
        assert_eq!(matching(&domains, "a.b.evil.example"), Some("evil.example".to_owned()));
        assert_eq!(matching(&domains, "phish.test"), Some("phish.test".to_owned()));
        assert_eq!(matching(&domains, "xn--bcher-kva.example"), Some("xn--bcher-kva.example".to_owned()));
        assert_eq!(matching(&domains, "notevil.example"), None);
        assert_eq!(matching(&domains, "example"), None);
        let broken = parse(path, "ok.example\nnot a domain\n").expect_err("refused");
        assert_eq!(broken.to_string(), "blocklist blocklist.txt, line 2: `not a domain` is not a domain");
    }

    #[test]
    fn a_broken_file_keeps_the_previous_list() {
        let dir = std::env::temp_dir().join(format!("offndat-blocklist-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("blocklist.txt");
        std::fs::write(&path, "evil.example\n").expect("write");
        let list = FileBlocklist::load(&path).expect("loads");
        assert!(!list.reload().expect("unchanged"));
        std::fs::write(&path, "evil.example\nnot a domain\n").expect("write");
        assert!(list.reload().is_err());
        assert_eq!(list.blocked_by("www.evil.example"), Some("evil.example".to_owned()));
        std::fs::remove_file(&path).expect("remove");
        assert!(list.reload().is_err(), "a missing file is an error too");
        assert_eq!(list.blocked_by("evil.example"), Some("evil.example".to_owned()));
        std::fs::write(&path, "other.example\n").expect("write");
        assert!(list.reload().expect("changed"));
        assert_eq!(list.blocked_by("evil.example"), None);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
