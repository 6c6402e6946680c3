#[xray::step(skip(client, clinet))]
fn search(client: &str, query: &str) -> usize {
    client.len() + query.len()
}

#[xray::step(skip(anything))]
fn no_parameters() -> u32 {
    1
}

fn main() {}
