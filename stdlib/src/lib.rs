//! flow-stdlib: the standard library's integration modules, written in Flow and embedded
//! in the binary. `import slack` resolves to the module named `slack` here; the modules
//! named in [`PRELUDE`] are in scope without an import.

/// One embedded `.flow` module.
#[derive(Clone, Copy, Debug)]
pub struct Module {
    pub name: &'static str,
    pub source: &'static str,
}

impl Module {
    /// The name diagnostics show for this module's file.
    pub fn display_name(&self) -> String {
        format!("<stdlib>/{}.flow", self.name)
    }
}

include!(concat!(env!("OUT_DIR"), "/modules.rs"));

/// Modules every file sees without importing them.
pub const PRELUDE: &[&str] = &["http", "file", "console", "approval"];

/// Looks a module up by the name used in `import NAME`.
pub fn module(name: &str) -> Option<&'static Module> {
    MODULES.iter().find(|m| m.name == name)
}

/// The names of all modules, sorted.
pub fn names() -> impl Iterator<Item = &'static str> {
    MODULES.iter().map(|m| m.name)
}
