//! `$PORT` allocation for dynos on the host network.

use rand::Rng;
use std::collections::HashSet;
use std::net::TcpListener;

pub struct PortPool {
    low: u16,
    high: u16,
    used: HashSet<u16>,
}

impl PortPool {
    pub fn new(low: u16, high: u16) -> PortPool {
        PortPool {
            low,
            high,
            used: HashSet::new(),
        }
    }

    /// A port no dyno of ours holds and nothing on the host listens on right now.
    pub fn allocate(&mut self) -> Option<u16> {
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            let p = rng.gen_range(self.low..=self.high);
            if self.used.contains(&p) {
                continue;
            }
            if TcpListener::bind(("0.0.0.0", p)).is_ok() {
                self.used.insert(p);
                return Some(p);
            }
        }
        None
    }

    pub fn claim(&mut self, port: u16) {
        self.used.insert(port);
    }

    pub fn release(&mut self, port: u16) {
        self.used.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_reusable() {
        let mut pool = PortPool::new(40000, 40010);
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_ne!(a, b);
        pool.release(a);
        assert!(!pool.used.contains(&a));
    }
}
