//! How many connections are open, in all and per address, against a limit of each: a
//! connection takes a [`Seat`] before anything of it is read, and gives it back when it ends
//! (the seat's drop), however it ends.
//!
//! The count is behind a plain mutex held for a map lookup, never across an await.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Which limit refused a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Total,
    Address,
}

#[derive(Debug)]
pub struct Occupancy {
    total: usize,
    per_address: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    all: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One open connection; dropping it frees the place.
#[derive(Debug)]
pub struct Seat {
    occupancy: Arc<Occupancy>,
    address: Option<IpAddr>,
}

impl Occupancy {
    pub fn new(total: usize, per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            per_address,
            open: Mutex::new(Open::default()),
        })
    }

    fn open(&self) -> MutexGuard<'_, Open> {
        // The counts stay consistent even if a holder panicked: every change is one statement.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A seat for a connection from `address` (`None`: counted only in the total, e.g. a
    /// trusted proxy that carries many clients).
    pub fn take(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Seat, Full> {
        let mut open = self.open();
        if open.all >= self.total {
            return Err(Full::Total);
        }
        if let Some(address) = address {
            let n = open.by_address.entry(address).or_insert(0);
            if *n >= self.per_address {
                return Err(Full::Address);
            }
            *n += 1;
        }
        open.all += 1;
        Ok(Seat {
            occupancy: self.clone(),
            address,
        })
    }

    /// Connections open now.
    pub fn open_now(&self) -> usize {
        self.open().all
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut open = self.occupancy.open();
        open.all -= 1;
        if let Some(address) = self.address
            && let Some(n) = open.by_address.get_mut(&address)
        {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_are_bounded_in_all_and_per_address_and_come_back() {
        let occupancy = Occupancy::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = occupancy.take(Some(a)).unwrap();
        let _a2 = occupancy.take(Some(a)).unwrap();
        assert_eq!(occupancy.take(Some(a)).unwrap_err(), Full::Address);
        let _b1 = occupancy.take(Some(b)).unwrap();
        assert_eq!(occupancy.take(Some(b)).unwrap_err(), Full::Total);
        assert_eq!(occupancy.take(None).unwrap_err(), Full::Total);
        drop(a1);
        assert_eq!(occupancy.open_now(), 2);
        let _a3 = occupancy.take(Some(a)).unwrap();
        assert_eq!(occupancy.open().by_address.len(), 2);
    }

    #[test]
    fn an_address_without_connections_is_forgotten() {
        let occupancy = Occupancy::new(10, 10);
        let seats: Vec<Seat> = (1..=5u8)
            .map(|i| occupancy.take(Some(IpAddr::from([192, 0, 2, i]))).unwrap())
            .collect();
        drop(seats);
        assert_eq!(occupancy.open_now(), 0);
        assert!(occupancy.open().by_address.is_empty());
    }
}
