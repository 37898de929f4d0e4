//! The Lua scripts every multi-step operation runs as, so Redis applies each atomically.

use redis::Script;

macro_rules! with_common {
    ($file:literal) => {
        concat!(include_str!("lua/common.lua"), "\n", include_str!($file))
    };
}

/// The bus's scripts, hashed once per bus.
pub(crate) struct Scripts {
    pub(crate) publish: Script,
    pub(crate) receive: Script,
    pub(crate) ack: Script,
    pub(crate) nack: Script,
    pub(crate) extend: Script,
    pub(crate) stats: Script,
    pub(crate) replay: Script,
    pub(crate) trim: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            publish: Script::new(include_str!("lua/publish.lua")),
            receive: Script::new(with_common!("lua/receive.lua")),
            ack: Script::new(with_common!("lua/ack.lua")),
            nack: Script::new(with_common!("lua/nack.lua")),
            extend: Script::new(with_common!("lua/extend.lua")),
            stats: Script::new(with_common!("lua/stats.lua")),
            replay: Script::new(include_str!("lua/replay.lua")),
            trim: Script::new(include_str!("lua/trim.lua")),
        }
    }
}
