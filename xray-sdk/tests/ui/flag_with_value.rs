#[xray::step(skip_output = true)]
fn flag_assigned(id: u32) -> u32 {
    id
}

#[xray::step(capture_self(all))]
fn flag_called(id: u32) -> u32 {
    id
}

#[xray::step(skip = "client")]
fn list_assigned(client: u32) -> u32 {
    client
}

fn main() {}
