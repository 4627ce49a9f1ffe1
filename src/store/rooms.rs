//! Rooms: which names exist and which host owns each.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, unix_now};
use crate::focus::RoomName;

/// What happened when a host asked for a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomCreated {
    Created,
    AlreadyYours,
    TakenByOtherHost,
}

impl Store {
    /// Creates a room for `owner` (a host's name, or `token:…` for a room a moderator's signed
    /// link opened).
    pub fn create_room(&self, room: &RoomName, owner: &str) -> Result<RoomCreated, StoreError> {
        let conn = self.conn();
        let inserted = conn.execute(
            "INSERT OR IGNORE INTO rooms (name, owner, created) VALUES (?1, ?2, ?3)",
            params![room.as_str(), owner, unix_now()],
        )?;
        if inserted == 1 {
            return Ok(RoomCreated::Created);
        }
        let existing: String = conn.query_row(
            "SELECT owner FROM rooms WHERE name = ?1",
            params![room.as_str()],
            |r| r.get(0),
        )?;
        Ok(if existing == owner {
            RoomCreated::AlreadyYours
        } else {
            RoomCreated::TakenByOtherHost
        })
    }

    pub fn room_exists(&self, room: &RoomName) -> Result<bool, StoreError> {
        let found: Option<i64> = self
            .conn()
            .query_row(
                "SELECT 1 FROM rooms WHERE name = ?1",
                params![room.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// Who owns a room, if it exists.
    pub fn room_owner(&self, room: &RoomName) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT owner FROM rooms WHERE name = ?1",
                params![room.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Removes a room; false if it did not exist.
    pub fn delete_room(&self, room: &RoomName) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM rooms WHERE name = ?1", params![room.as_str()])?
            == 1)
    }

    pub fn rooms_of(&self, owner: &str) -> Result<Vec<RoomName>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT name FROM rooms WHERE owner = ?1 ORDER BY name")?;
        let rows = stmt.query_map(params![owner], |r| r.get::<_, String>(0))?;
        let mut rooms = Vec::new();
        for name in rows {
            if let Ok(room) = RoomName::parse(&name?) {
                rooms.push(room);
            }
        }
        Ok(rooms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::HostName;

    #[test]
    fn rooms_belong_to_one_host() {
        let store = Store::in_memory();
        let juf = HostName::parse("juf").unwrap();
        let meester = HostName::parse("meester").unwrap();
        let room = RoomName::parse("groep-8").unwrap();
        assert!(!store.room_exists(&room).unwrap());
        assert_eq!(
            store.create_room(&room, juf.as_str()).unwrap(),
            RoomCreated::Created
        );
        assert_eq!(
            store.create_room(&room, juf.as_str()).unwrap(),
            RoomCreated::AlreadyYours
        );
        assert_eq!(
            store.create_room(&room, meester.as_str()).unwrap(),
            RoomCreated::TakenByOtherHost
        );
        assert!(store.room_exists(&room).unwrap());
        assert_eq!(store.rooms_of(juf.as_str()).unwrap(), vec![room.clone()]);
        assert!(store.rooms_of(meester.as_str()).unwrap().is_empty());
        assert_eq!(
            store.room_owner(&room).unwrap().as_deref(),
            Some(juf.as_str())
        );
        assert!(store.delete_room(&room).unwrap());
        assert!(!store.delete_room(&room).unwrap());
        assert!(!store.room_exists(&room).unwrap());
    }
}
