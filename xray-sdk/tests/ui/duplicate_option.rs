#[xray::step(name = "first", kind = "llm", name = "second")]
fn named_twice(id: u32) -> u32 {
    id
}

#[xray::step(skip_output, skip_output)]
fn flag_twice(id: u32) -> u32 {
    id
}

#[xray::step(skip(a), skip(b))]
fn list_twice(a: u32, b: u32) -> u32 {
    a + b
}

fn main() {}
