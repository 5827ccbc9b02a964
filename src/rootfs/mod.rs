//! Layers built from a root filesystem at build time: the customisation layer (`contents`,
//! `extraCommands`), root scripts in a user namespace (`runAsRoot`, `fakeRootCommands`) and
//! the changes they make to an unpacked parent (buildImage's layer).

pub mod customisation;
pub mod root_shell;
pub mod unpack;
