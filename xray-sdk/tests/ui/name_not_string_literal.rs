const NAME: &str = "fetch";

#[xray::step(name = NAME)]
fn fetch(id: u32) -> u32 {
    id
}

#[xray::step(kind = 3)]
fn kind_number(id: u32) -> u32 {
    id
}

#[xray::step(name = "")]
fn empty_name(id: u32) -> u32 {
    id
}

#[xray::step(kind)]
fn kind_without_value(id: u32) -> u32 {
    id
}

#[xray::step(name "fetch")]
fn name_without_equals(id: u32) -> u32 {
    id
}

fn main() {}
