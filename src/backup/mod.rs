//! Backup and restore: `synod snapshot save` streams a consistent snapshot of the state machine
//! from a live node into a file ([`save`]); `synod snapshot restore` seeds the data directories
//! of a new cluster from it ([`restore`]). The file ([`file`](mod@file)) carries the chunks
//! nodes stream to lagging peers, between a header and a trailer, each record checksummed. A
//! restored data directory remembers its source cluster ([`origin`]), and `synod start` refuses
//! to run it with that cluster's CA.

pub mod cli;
pub mod file;
pub mod origin;
pub mod restore;
pub mod save;
