//! The synthetic account from a local file, for pipelines that hold it in their own secret store.
//!
//! The file is JSON shaped like the Secrets Manager secret. It is refused when every user on
//! the machine can read it, and it is read anew on each load, so a rotated file is picked up
//! the same way a rotated secret is.

use async_trait::async_trait;
use std::path::{Path, PathBuf};
use synthetic_checks::CheckError;
use synthetic_checks::secret::{Credentials, Secret, SecretSource};

pub struct CredentialsFile {
    path: PathBuf,
}

impl CredentialsFile {
    /// Checks the file's permissions and shape once, up front, so a bad file stops the command
    /// before any request is sent. Errors name the file and the field, never a value.
    pub fn open(path: &Path) -> Result<Self, CheckError> {
        let file = CredentialsFile { path: path.to_path_buf() };
        let raw = file.read()?;
        Credentials::parse(&file.id(), &raw)?;
        Ok(file)
    }

    /// The id the credential store and its error messages use: the path.
    pub fn id(&self) -> String {
        self.path.display().to_string()
    }

    fn read(&self) -> Result<Secret<String>, CheckError> {
        let shown = self.path.display();
        let unreadable = |e: std::io::Error| CheckError::Misconfigured(format!("credentials file {shown}: {e}"));
        refuse_world_readable(&self.path, &std::fs::metadata(&self.path).map_err(unreadable)?)?;
        std::fs::read_to_string(&self.path).map(Secret::new).map_err(unreadable)
    }
}

#[cfg(unix)]
fn refuse_world_readable(path: &Path, metadata: &std::fs::Metadata) -> Result<(), CheckError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(CheckError::Misconfigured(format!(
            "credentials file {path} is world-readable (mode {mode:03o}), so any user on this machine can read the \
             synthetic account; run `chmod 600 {path}` and try again",
            path = path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_world_readable(_: &Path, _: &std::fs::Metadata) -> Result<(), CheckError> {
    Ok(())
}

#[async_trait]
impl SecretSource for CredentialsFile {
    async fn secret_string(&self, _secret_id: &str) -> Result<Secret<String>, CheckError> {
        self.read()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const ACCOUNT: &str = r#"{"email":"mon@example.com","password":"hunter2-secret"}"#;

    fn file_with(name: &str, content: &str, mode: u32) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("synthetic-cli-creds-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("account.json");
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[tokio::test]
    async fn a_private_file_is_read_as_the_secret() {
        let path = file_with("private", ACCOUNT, 0o600);
        let file = CredentialsFile::open(&path).unwrap();
        assert_eq!(file.secret_string("ignored").await.unwrap().expose(), ACCOUNT);
    }

    #[test]
    fn a_world_readable_file_is_refused_with_the_fix() {
        let path = file_with("open", ACCOUNT, 0o644);
        let error = CredentialsFile::open(&path).err().unwrap().to_string();
        assert!(error.contains(&path.display().to_string()) && error.contains("world-readable"), "{error}");
        assert!(error.contains(&format!("chmod 600 {}", path.display())), "{error}");
        assert!(!error.contains("hunter2"));
    }

    #[test]
    fn a_malformed_or_missing_file_is_named_without_its_content() {
        let path = file_with("broken", r#"{"email":"mon@example.com","password":"hunter2-secret""#, 0o600);
        let error = CredentialsFile::open(&path).err().unwrap().to_string();
        assert!(error.contains("not valid JSON") && !error.contains("hunter2"), "{error}");
        let missing = path.with_file_name("absent.json");
        let error = CredentialsFile::open(&missing).err().unwrap().to_string();
        assert!(error.contains("absent.json"), "{error}");
    }
}
