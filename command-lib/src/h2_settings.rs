//! The HTTP/2 tuning settings of HTTP and HTTPS listeners, listed once.
//!
//! Sozu's listener messages (`HttpListenerConfig`, `HttpsListenerConfig`
//! and their `Update…` patches), the `[[listeners]]` table of the
//! configuration file and `sozu listener … update` all carry the same
//! nineteen optional `h2_*` fields. This module is the one list of them:
//! [`H2Setting`] names each setting with its field name, its smallest
//! accepted value and a one-line description, and [`H2Fields`] reads and
//! writes a setting on any value that carries the fields.
//!
//! Code that needs "every HTTP/2 setting" iterates [`H2Setting::ALL`]
//! instead of spelling the fields out; adding a setting is one line in
//! [`for_each_h2_setting!`].

use crate::proto::command::{
    HttpListenerConfig, HttpsListenerConfig, UpdateHttpListenerConfig, UpdateHttpsListenerConfig,
};

/// Calls `$callback!` with the table of settings, one entry per setting:
/// `(Variant, field_name, field type, minimum, "description")`, then the
/// extra tokens given after the callback's name. The order is the order
/// of `sozu listener http update --help` and of the checks that report the
/// first value below its minimum.
macro_rules! for_each_h2_setting {
    ($callback:ident $($extra:tt)*) => {
        $callback! {
            [
                (MaxRstStreamPerWindow, h2_max_rst_stream_per_window, u32, 1,
                    "RST_STREAM frames allowed per window (at least 1)"),
                (MaxPingPerWindow, h2_max_ping_per_window, u32, 1,
                    "PING frames allowed per window (at least 1)"),
                (MaxSettingsPerWindow, h2_max_settings_per_window, u32, 1,
                    "SETTINGS frames allowed per window (at least 1)"),
                (MaxEmptyDataPerWindow, h2_max_empty_data_per_window, u32, 1,
                    "Empty DATA frames allowed per window (at least 1)"),
                (MaxContinuationFrames, h2_max_continuation_frames, u32, 1,
                    "CONTINUATION frames allowed per header block (at least 1)"),
                (MaxGlitchCount, h2_max_glitch_count, u32, 1,
                    "Protocol anomalies tolerated before closing (at least 1)"),
                (InitialConnectionWindow, h2_initial_connection_window, u32, 0,
                    "Connection receive window, bytes"),
                (MaxConcurrentStreams, h2_max_concurrent_streams, u32, 1,
                    "Concurrent streams per connection (at least 1)"),
                (StreamShrinkRatio, h2_stream_shrink_ratio, u32, 2,
                    "Shrink ratio of recycled stream slots (at least 2)"),
                (MaxRstStreamLifetime, h2_max_rst_stream_lifetime, u64, 1,
                    "Lifetime floor of received RST_STREAM frames"),
                (MaxRstStreamAbusiveLifetime, h2_max_rst_stream_abusive_lifetime, u64, 1,
                    "Floor of pre-response RST_STREAM frames"),
                (MaxRstStreamEmittedLifetime, h2_max_rst_stream_emitted_lifetime, u64, 1,
                    "Floor of provoked RST_STREAM frames the server sends"),
                (MaxHeaderListSize, h2_max_header_list_size, u32, 1,
                    "Decoded header list size per request, bytes"),
                (MaxHeaderTableSize, h2_max_header_table_size, u32, 1,
                    "HPACK dynamic table size accepted, bytes"),
                (MaxHeaderFields, h2_max_header_fields, u32, 1,
                    "Header fields per request"),
                (StreamRefusalPercent, h2_stream_refusal_percent, u32, 0,
                    "Percent of the reset floor at which new streams are refused (0: never)"),
                (StreamIdleTimeoutSeconds, h2_stream_idle_timeout_seconds, u32, 0,
                    "Idle timeout of a stream, seconds"),
                (GracefulShutdownDeadlineSeconds, h2_graceful_shutdown_deadline_seconds, u32, 0,
                    "Seconds after GOAWAY before closing (0: wait forever)"),
                (MaxWindowUpdateStream0PerWindow, h2_max_window_update_stream0_per_window, u32, 1,
                    "Unsolicited connection WINDOW_UPDATE frames allowed per window"),
            ]
            $($extra)*
        }
    };
}
pub(crate) use for_each_h2_setting;

macro_rules! define_h2_setting {
    ([$(($variant:ident, $field:ident, $ty:ty, $minimum:literal, $help:literal)),* $(,)?]) => {
        /// One HTTP/2 tuning setting of a listener.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum H2Setting {
            $(
                #[doc = $help]
                $variant,
            )*
        }

        impl H2Setting {
            /// Every setting, in the order of the table.
            pub const ALL: &'static [H2Setting] = &[$(H2Setting::$variant),*];

            /// The field name, as in the protocol messages and the
            /// configuration file (`h2_max_concurrent_streams`).
            pub fn name(self) -> &'static str {
                match self {
                    $(H2Setting::$variant => stringify!($field),)*
                }
            }

            /// The smallest value accepted (0 when any value is).
            pub fn minimum(self) -> u64 {
                match self {
                    $(H2Setting::$variant => $minimum,)*
                }
            }

            /// Whether the value is a 64-bit field (the three RST_STREAM
            /// lifetimes); the others are 32-bit.
            pub fn is_u64(self) -> bool {
                match self {
                    $(H2Setting::$variant => stringify!($ty) == "u64",)*
                }
            }

            /// What the setting limits, in one line.
            pub fn description(self) -> &'static str {
                match self {
                    $(H2Setting::$variant => $help,)*
                }
            }
        }
    };
}

for_each_h2_setting!(define_h2_setting);

impl H2Setting {
    /// The command-line option of the setting (`--h2-max-concurrent-streams`
    /// without the dashes): the field name with `-` for `_`.
    pub fn option_name(self) -> String {
        self.name().replace('_', "-")
    }

    /// The first setting of `fields` whose value is below its minimum, with
    /// that value.
    pub fn first_below_minimum(fields: &impl H2Fields) -> Option<(H2Setting, u64)> {
        H2Setting::ALL.iter().find_map(|&setting| {
            fields
                .h2(setting)
                .filter(|&value| value < setting.minimum())
                .map(|value| (setting, value))
        })
    }
}

/// A value carrying the optional HTTP/2 fields (`None`: not set).
///
/// Values read from a 32-bit field always fit back into it, so copying
/// between two carriers never loses anything.
pub trait H2Fields {
    /// The value of `setting`, widened to 64 bits.
    fn h2(&self, setting: H2Setting) -> Option<u64>;

    /// Sets `setting`; a value too large for a 32-bit field saturates.
    fn set_h2(&mut self, setting: H2Setting, value: Option<u64>);

    /// Copies every setting of `source`, set or not.
    fn copy_h2_from(&mut self, source: &impl H2Fields) {
        for &setting in H2Setting::ALL {
            self.set_h2(setting, source.h2(setting));
        }
    }

    /// Copies the settings `source` sets and keeps the others (how a patch
    /// applies).
    fn patch_h2_from(&mut self, source: &impl H2Fields) {
        for &setting in H2Setting::ALL {
            if let Some(value) = source.h2(setting) {
                self.set_h2(setting, Some(value));
            }
        }
    }

    /// The settings that are set, by name, in table order.
    fn h2_set(&self) -> Vec<(H2Setting, u64)> {
        H2Setting::ALL
            .iter()
            .filter_map(|&setting| self.h2(setting).map(|value| (setting, value)))
            .collect()
    }
}

/// Narrows a value to the width of its field.
#[doc(hidden)]
pub trait FromH2Value: Sized {
    fn from_h2_value(value: u64) -> Self;
}

impl FromH2Value for u32 {
    fn from_h2_value(value: u64) -> Self {
        u32::try_from(value).unwrap_or(u32::MAX)
    }
}

impl FromH2Value for u64 {
    fn from_h2_value(value: u64) -> Self {
        value
    }
}

macro_rules! impl_h2_fields {
    ([$(($variant:ident, $field:ident, $ty:ty, $minimum:literal, $help:literal)),* $(,)?] $target:ty) => {
        impl $crate::h2_settings::H2Fields for $target {
            fn h2(&self, setting: $crate::h2_settings::H2Setting) -> Option<u64> {
                match setting {
                    $($crate::h2_settings::H2Setting::$variant => self.$field.map(u64::from),)*
                }
            }

            fn set_h2(&mut self, setting: $crate::h2_settings::H2Setting, value: Option<u64>) {
                match setting {
                    $($crate::h2_settings::H2Setting::$variant => {
                        self.$field = value.map(
                            <$ty as $crate::h2_settings::FromH2Value>::from_h2_value,
                        );
                    })*
                }
            }
        }
    };
}
pub(crate) use impl_h2_fields;

for_each_h2_setting!(impl_h2_fields HttpListenerConfig);
for_each_h2_setting!(impl_h2_fields HttpsListenerConfig);
for_each_h2_setting!(impl_h2_fields UpdateHttpListenerConfig);
for_each_h2_setting!(impl_h2_fields UpdateHttpsListenerConfig);

/// The nineteen settings as plain values, for callers that gather them
/// before building a message (the command line's options).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct H2Values {
    values: std::collections::BTreeMap<H2Setting, u64>,
}

impl H2Fields for H2Values {
    fn h2(&self, setting: H2Setting) -> Option<u64> {
        self.values.get(&setting).copied()
    }

    fn set_h2(&mut self, setting: H2Setting, value: Option<u64>) {
        match value {
            Some(value) => self.values.insert(setting, value),
            None => self.values.remove(&setting),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_nineteen_distinct_fields() {
        let names: std::collections::BTreeSet<_> = H2Setting::ALL
            .iter()
            .map(|setting| setting.name())
            .collect();
        assert_eq!(names.len(), 19);
        assert!(names.iter().all(|name| name.starts_with("h2_")));
        assert_eq!(
            H2Setting::MaxConcurrentStreams.option_name(),
            "h2-max-concurrent-streams"
        );
        assert!(H2Setting::MaxRstStreamLifetime.is_u64());
        assert!(!H2Setting::MaxHeaderListSize.is_u64());
    }

    #[test]
    fn getters_and_setters_reach_the_named_field() {
        let mut listener = HttpsListenerConfig::default();
        for (index, &setting) in H2Setting::ALL.iter().enumerate() {
            listener.set_h2(setting, Some(index as u64 + 1));
        }
        assert_eq!(listener.h2_max_rst_stream_per_window, Some(1));
        assert_eq!(listener.h2_max_concurrent_streams, Some(8));
        assert_eq!(listener.h2_max_window_update_stream0_per_window, Some(19));
        let mut patch = UpdateHttpsListenerConfig::default();
        patch.copy_h2_from(&listener);
        assert_eq!(patch.h2_set().len(), 19);
        let mut values = H2Values::default();
        values.set_h2(H2Setting::StreamShrinkRatio, Some(1));
        assert_eq!(
            H2Setting::first_below_minimum(&values),
            Some((H2Setting::StreamShrinkRatio, 1))
        );
        listener.patch_h2_from(&values);
        assert_eq!(listener.h2_stream_shrink_ratio, Some(1));
        assert_eq!(listener.h2_max_concurrent_streams, Some(8));
    }
}
