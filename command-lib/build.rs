//! Compiles `proto/command.proto` into Rust types with prost, in pure Rust
//! (protox), so a fresh machine needs no `protoc`.
//!
//! Serde derives give every message the JSON shape of Sozu's state files and
//! `--json` output: struct fields keep their proto names, oneof variants and
//! enum names are SCREAMING_SNAKE_CASE, enum-typed fields stay integers.
//! Repeated and map fields default to empty when a record omits them, so state
//! files written by older daemons (which did not know the newer fields) load.

use prost_build::Config;
use protox::prost_reflect::prost_types::field_descriptor_proto::Label;

fn main() {
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
    let proto_file = format!("{proto_dir}/command.proto");
    println!("cargo:rerun-if-changed={proto_file}");

    let descriptors = match protox::compile([&proto_file], [proto_dir]) {
        Ok(descriptors) => descriptors,
        Err(error) => panic!("proto/command.proto does not compile: {error:?}"),
    };

    let mut config = Config::new();
    config
        .btree_map(["."])
        .type_attribute(".", "#[derive(::serde::Serialize, ::serde::Deserialize)]")
        .enum_attribute(".", "#[serde(rename_all = \"SCREAMING_SNAKE_CASE\")]");

    // Every repeated (and map) field may be missing in older JSON records.
    for file in &descriptors.file {
        for message in &file.message_type {
            for field in &message.field {
                if field.label() == Label::Repeated {
                    config.field_attribute(
                        format!(".command.{}.{}", message.name(), field.name()),
                        "#[serde(default)]",
                    );
                }
            }
        }
    }

    if let Err(error) = config.compile_fds(descriptors) {
        panic!("could not generate Rust code from proto/command.proto: {error}");
    }
}
