//! The cases, one public function each, grouped by the trait they mainly exercise. Each takes
//! the backend's factory and panics, naming what differs, when the backend breaks the
//! contract of `rhizome-store`.

mod import;
mod keys;
mod log;
mod peers;
mod quarantine;
mod views;

pub use import::*;
pub use keys::*;
pub use log::*;
pub use peers::*;
pub use quarantine::*;
pub use views::*;
