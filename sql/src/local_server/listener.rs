//! Who listens on a loopback port: the owner of the listening socket, from
//! the kernel's socket tables (`/proc/net/tcp`, `/proc/net/tcp6`).

/// The socket state "listening" in `/proc/net/tcp*`.
const TCP_LISTEN: &str = "0A";

/// Whether every socket listening on `port` belongs to this process's
/// effective user (false when one belongs to anyone else, or none listens).
pub fn owned_by_us(port: u16) -> bool {
    let ours = nix::unistd::geteuid().as_raw();
    let owners = listening_owners(port);
    !owners.is_empty() && owners.iter().all(|uid| *uid == ours)
}

/// The uids owning sockets that listen on `port`, any address.
fn listening_owners(port: u16) -> Vec<u32> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| owners_in(&text, port))
        .collect()
}

/// Parses one socket table: `sl local rem st queues timer retr uid …`.
fn owners_in(table: &str, port: u16) -> Vec<u32> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit_once(':')?.1;
            let state = fields.get(3)?;
            let uid = fields.get(7)?.parse().ok()?;
            (u16::from_str_radix(local_port, 16).ok()? == port && *state == TCP_LISTEN)
                .then_some(uid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_listening_owner() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:46BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0\n\
           1: 0100007F:46BB 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1\n\
           2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(owners_in(table, 18107), [1000]);
        assert_eq!(owners_in(table, 8080), [0]);
        assert!(owners_in(table, 9).is_empty());
    }

    #[test]
    fn a_port_this_process_listens_on_is_ours() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(owned_by_us(port));
        drop(listener);
        assert!(!owned_by_us(port));
    }
}
