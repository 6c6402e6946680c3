struct Client;

impl Client {
    #[xray::step(capture_self)]
    fn new(name: &str) -> Client {
        let _ = name;
        Client
    }
}

#[xray::step(capture_self)]
fn free_function(id: u32) -> u32 {
    id
}

fn main() {}
