//! A port of the Nexmark event generator of `nexmark/nexmark` (commit
//! 6b3646c, `nexmark-flink/src/main/java/com/github/nexmark/flink/generator/`:
//! `GeneratorConfig`, `NexmarkGenerator`, `model/PersonGenerator`,
//! `AuctionGenerator`, `BidGenerator`, `PriceGenerator`, `StringsGenerator`,
//! `LongGenerator`; itself from Apache Beam's Nexmark), with the defaults of
//! its `NexmarkConfiguration`: proportions person 1 : auction 3 : bid 46,
//! `firstEventRate` 10,000 events/s with one generator (so event `n` is at
//! `base + n * 100 µs`, 10 events per millisecond), `outOfOrderGroupSize` 1
//! (event time never decreases), `hotAuctionRatio` 2, `hotSellersRatio` 4,
//! `hotBiddersRatio` 4, `numInFlightAuctions` 100, `numActivePeople` 1,000,
//! average sizes 200 (person), 500 (auction) and 100 (bid) bytes reached
//! with `extra` padding; first event id and first event number 1, as its
//! `NexmarkTableSourceFactory` sets them.
//!
//! Differences from the original, none of them in a distribution: the
//! random source is a port of Java's `SplittableRandom` seeded with the
//! bench's seed (the original seeds it from the clock, and its static
//! tables, the 1 MiB `extra` text and the channel URLs, from unseeded
//! instances too: here from a second seeded instance), so every run has the
//! same events; the base time is a parameter (the original takes the wall
//! clock). Kept as in the original: `BidGenerator` adds `FIRST_PERSON_ID`
//! to the bidder twice (bidders are 2,000 above person ids).

/// Java's `java.util.SplittableRandom` (JDK 8+), for the same
/// distributions as the original's `nextInt(bound)` and `nextDouble()`.
pub(crate) struct SplittableRandom {
    seed: u64,
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl SplittableRandom {
    pub(crate) fn new(seed: u64) -> Self {
        SplittableRandom { seed }
    }

    fn next_seed(&mut self) -> u64 {
        self.seed = self.seed.wrapping_add(GOLDEN_GAMMA);
        self.seed
    }

    fn mix64(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn mix32(mut z: u64) -> i32 {
        z = (z ^ (z >> 33)).wrapping_mul(0x62a9_d9ed_7997_05f5);
        ((z ^ (z >> 28)).wrapping_mul(0xcb24_d0a5_c88c_35b3) >> 32) as u32 as i32
    }

    /// `nextInt()`.
    pub(crate) fn next_int(&mut self) -> i32 {
        Self::mix32(self.next_seed())
    }

    /// `nextInt(bound)`: uniform in `[0, bound)`, `bound > 0`.
    pub(crate) fn next_int_bounded(&mut self, bound: i32) -> i32 {
        let mut r = Self::mix32(self.next_seed());
        let m = bound - 1;
        if bound & m == 0 {
            r & m
        } else {
            let mut u = ((r as u32) >> 1) as i32;
            loop {
                r = u % bound;
                if u.wrapping_add(m).wrapping_sub(r) >= 0 {
                    return r;
                }
                u = ((Self::mix32(self.next_seed()) as u32) >> 1) as i32;
            }
        }
    }

    /// `nextLong()`.
    pub(crate) fn next_long(&mut self) -> i64 {
        Self::mix64(self.next_seed()) as i64
    }

    /// `nextDouble()`: uniform in `[0, 1)`.
    pub(crate) fn next_double(&mut self) -> f64 {
        (Self::mix64(self.next_seed()) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `LongGenerator.nextLong(random, n)`: `[0, n)`.
    fn next_long_bounded(&mut self, n: i64) -> i64 {
        if n < i32::MAX as i64 {
            self.next_int_bounded(n as i32) as i64
        } else {
            (self.next_long() % n).abs()
        }
    }
}

/// `Person`, with the JSON field names of Nexmark's Flink model.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Person {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) email_address: String,
    pub(crate) credit_card: String,
    pub(crate) city: String,
    pub(crate) state: String,
    pub(crate) date_time: i64,
    pub(crate) extra: String,
}

/// `Auction`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Auction {
    pub(crate) id: i64,
    pub(crate) item_name: String,
    pub(crate) description: String,
    pub(crate) initial_bid: i64,
    pub(crate) reserve: i64,
    pub(crate) date_time: i64,
    pub(crate) expires: i64,
    pub(crate) seller: i64,
    pub(crate) category: i64,
    pub(crate) extra: String,
}

/// `Bid`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Bid {
    pub(crate) auction: i64,
    pub(crate) bidder: i64,
    pub(crate) price: i64,
    pub(crate) channel: String,
    pub(crate) url: String,
    pub(crate) date_time: i64,
    pub(crate) extra: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Event {
    Person(Person),
    Auction(Auction),
    Bid(Bid),
}

// NexmarkConfiguration's defaults.
const PERSON_PROPORTION: i64 = 1;
const AUCTION_PROPORTION: i64 = 3;
const BID_PROPORTION: i64 = 46;
const TOTAL_PROPORTION: i64 = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION;
const AVG_PERSON_BYTE_SIZE: i32 = 200;
const AVG_AUCTION_BYTE_SIZE: i32 = 500;
const AVG_BID_BYTE_SIZE: i32 = 100;
const HOT_AUCTION_RATIO: i32 = 2;
const HOT_SELLERS_RATIO: i32 = 4;
const HOT_BIDDERS_RATIO: i32 = 4;
const NUM_IN_FLIGHT_AUCTIONS: i64 = 100;
const NUM_ACTIVE_PEOPLE: i64 = 1000;
/// `firstEventRate` (events/s) with `numEventGenerators` 1.
pub(crate) const EVENT_RATE: f64 = 10_000.0;
const INTER_EVENT_DELAY_US: f64 = 1_000_000.0 / EVENT_RATE;
// GeneratorConfig's.
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_PERSON_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const FIRST_EVENT_ID: i64 = 1;
const FIRST_EVENT_NUMBER: i64 = 1;
// The models'.
const PERSON_ID_LEAD: i64 = 10;
const AUCTION_ID_LEAD: i64 = 10;
const NUM_CATEGORIES: i32 = 5;
const HOT_SELLER_RATIO: i64 = 100;
const HOT_AUCTION_BATCH: i64 = 100;
const HOT_BIDDER_RATIO: i64 = 100;
const HOT_CHANNELS_RATIO: i32 = 2;
const CHANNELS_NUMBER: usize = 10_000;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const MIN_STRING_LENGTH: i32 = 3;
const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] =
    ["Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"];
const FIRST_NAMES: [&str; 11] =
    ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"];
const LAST_NAMES: [&str; 9] = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"];

/// The longest auction the generator makes, in ms: `nextAuctionLengthMs`
/// draws `1 + [0, 2 * horizon)` where the horizon is the time until
/// `numInFlightAuctions` more auctions (1,666 events, 166 or 167 ms at
/// 10 events/ms).
pub(crate) const MAX_AUCTION_LENGTH_MS: i64 = 2 * 167;

/// The generator: `next()` gives event `0, 1, ..` with its timestamp.
pub(crate) struct Generator {
    base_time: i64,
    random: SplittableRandom,
    count: i64,
    /// `StringsGenerator.REUSABLE_EXTRA_STRING`.
    extra_text: Vec<u8>,
    hot_urls: Vec<String>,
    channel_urls: Vec<(String, String)>,
}

impl Generator {
    pub(crate) fn new(seed: u64, base_time: i64) -> Self {
        let mut tables = SplittableRandom::new(seed ^ 0x5DEE_CE66_D1CE_4E5B);
        let extra_text = exact_string_by_digits(&mut tables, 1024 * 1024);
        let mut g = Generator {
            base_time,
            random: SplittableRandom::new(seed),
            count: 0,
            extra_text,
            hot_urls: Vec::new(),
            channel_urls: Vec::new(),
        };
        g.hot_urls = (0..4).map(|_| base_url(&mut tables)).collect();
        g.channel_urls = (0..CHANNELS_NUMBER)
            .map(|i| {
                let mut url = base_url(&mut tables);
                if tables.next_int_bounded(10) > 0 {
                    url.push_str(&format!("&channel_id={}", (i as i32).reverse_bits().wrapping_abs()));
                }
                (format!("channel-{i}"), url)
            })
            .collect();
        g
    }

    /// `GeneratorConfig.timestampForEvent`.
    fn timestamp_for_event(&self, event_number: i64) -> i64 {
        self.base_time + (event_number as f64 * INTER_EVENT_DELAY_US) as i64 / 1000
    }

    /// `NexmarkGenerator.nextEvent` (the event and its time).
    pub(crate) fn next_event(&mut self) -> Event {
        // outOfOrderGroupSize 1: the adjusted event number is the event number.
        let event_number = FIRST_EVENT_NUMBER + self.count;
        let timestamp = self.timestamp_for_event(event_number);
        let event_id = FIRST_EVENT_ID + event_number;
        let rem = event_id % TOTAL_PROPORTION;
        let event = if rem < PERSON_PROPORTION {
            Event::Person(self.next_person(event_id, timestamp))
        } else if rem < PERSON_PROPORTION + AUCTION_PROPORTION {
            Event::Auction(self.next_auction(event_number, event_id, timestamp))
        } else {
            Event::Bid(self.next_bid(event_id, timestamp))
        };
        self.count += 1;
        event
    }

    fn next_person(&mut self, event_id: i64, timestamp: i64) -> Person {
        let r = &mut self.random;
        let id = last_base0_person_id(event_id) + FIRST_PERSON_ID;
        let name = format!(
            "{} {}",
            FIRST_NAMES[r.next_int_bounded(FIRST_NAMES.len() as i32) as usize],
            LAST_NAMES[r.next_int_bounded(LAST_NAMES.len() as i32) as usize]
        );
        let email = format!("{}@{}.com", next_string(r, 7, ' '), next_string(r, 5, ' '));
        let credit_card = (0..4).map(|_| format!("{:04}", r.next_int_bounded(10_000))).collect::<Vec<_>>().join(" ");
        let city = US_CITIES[r.next_int_bounded(US_CITIES.len() as i32) as usize].to_string();
        let state = US_STATES[r.next_int_bounded(US_STATES.len() as i32) as usize].to_string();
        let size = 8 + name.len() + email.len() + credit_card.len() + city.len() + state.len();
        let extra = self.next_extra(size as i32, AVG_PERSON_BYTE_SIZE);
        Person { id, name, email_address: email, credit_card, city, state, date_time: timestamp, extra }
    }

    fn next_auction(&mut self, event_number: i64, event_id: i64, timestamp: i64) -> Auction {
        let id = last_base0_auction_id(event_id) + FIRST_AUCTION_ID;
        let r = &mut self.random;
        let seller = if r.next_int_bounded(HOT_SELLERS_RATIO) > 0 {
            (last_base0_person_id(event_id) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO
        } else {
            next_base0_person_id(event_id, r)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + r.next_int_bounded(NUM_CATEGORIES) as i64;
        let initial_bid = next_price(r);
        // nextAuctionLengthMs: a length with the average horizon.
        let events_for_auctions = (NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION) / AUCTION_PROPORTION;
        let future_auction = self.timestamp_for_event(event_number + events_for_auctions);
        let horizon = future_auction - timestamp;
        let r = &mut self.random;
        let expires = timestamp + 1 + r.next_long_bounded((horizon * 2).max(1));
        let item_name = next_string(r, 20, ' ');
        let description = next_string(r, 100, ' ');
        let reserve = initial_bid + next_price(r);
        let size = 8 + item_name.len() + description.len() + 8 + 8 + 8 + 8 + 8;
        let extra = self.next_extra(size as i32, AVG_AUCTION_BYTE_SIZE);
        Auction {
            id,
            item_name,
            description,
            initial_bid,
            reserve,
            date_time: timestamp,
            expires,
            seller,
            category,
            extra,
        }
    }

    fn next_bid(&mut self, event_id: i64, timestamp: i64) -> Bid {
        let r = &mut self.random;
        let auction = if r.next_int_bounded(HOT_AUCTION_RATIO) > 0 {
            (last_base0_auction_id(event_id) / HOT_AUCTION_BATCH) * HOT_AUCTION_BATCH
        } else {
            next_base0_auction_id(event_id, r)
        } + FIRST_AUCTION_ID;
        let mut bidder = if r.next_int_bounded(HOT_BIDDERS_RATIO) > 0 {
            (last_base0_person_id(event_id) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
        } else {
            next_base0_person_id(event_id, r)
        } + FIRST_PERSON_ID;
        let price = next_price(r);
        let (channel, url) = if r.next_int_bounded(HOT_CHANNELS_RATIO) > 0 {
            let i = r.next_int_bounded(HOT_CHANNELS.len() as i32) as usize;
            (HOT_CHANNELS[i].to_string(), self.hot_urls[i].clone())
        } else {
            self.channel_urls[r.next_int_bounded(CHANNELS_NUMBER as i32) as usize].clone()
        };
        // As in the original (BidGenerator.java adds it twice).
        bidder += FIRST_PERSON_ID;
        let extra = self.next_extra(8 + 8 + 8 + 8, AVG_BID_BYTE_SIZE);
        Bid { auction, bidder, price, channel, url, date_time: timestamp, extra }
    }

    /// `StringsGenerator.nextExtra`: padding so that `current_size` plus its
    /// length averages `desired_average_size`.
    fn next_extra(&mut self, current_size: i32, desired_average_size: i32) -> String {
        if current_size > desired_average_size {
            return String::new();
        }
        let avg = desired_average_size - current_size;
        let delta = (avg as f64 * 0.2).round() as i32;
        let min_size = avg - delta;
        let size = min_size + if delta == 0 { 0 } else { self.random.next_int_bounded(2 * delta) };
        // nextExactString: a slice of the reusable text.
        let offset = self.random.next_int_bounded(self.extra_text.len() as i32 - size) as usize;
        String::from_utf8_lossy(&self.extra_text[offset..offset + size as usize]).into_owned()
    }
}

/// `PersonGenerator.lastBase0PersonId`.
fn last_base0_person_id(event_id: i64) -> i64 {
    let epoch = event_id / TOTAL_PROPORTION;
    let offset = (event_id % TOTAL_PROPORTION).min(PERSON_PROPORTION - 1);
    epoch * PERSON_PROPORTION + offset
}

/// `PersonGenerator.nextBase0PersonId`: one of the active people, or a few
/// ahead.
fn next_base0_person_id(event_id: i64, r: &mut SplittableRandom) -> i64 {
    let num_people = last_base0_person_id(event_id) + 1;
    let active = num_people.min(NUM_ACTIVE_PEOPLE);
    num_people - active + r.next_long_bounded(active + PERSON_ID_LEAD)
}

/// `AuctionGenerator.lastBase0AuctionId`.
fn last_base0_auction_id(event_id: i64) -> i64 {
    let mut epoch = event_id / TOTAL_PROPORTION;
    let mut offset = event_id % TOTAL_PROPORTION;
    if offset < PERSON_PROPORTION {
        epoch -= 1;
        offset = AUCTION_PROPORTION - 1;
    } else if offset >= PERSON_PROPORTION + AUCTION_PROPORTION {
        offset = AUCTION_PROPORTION - 1;
    } else {
        offset -= PERSON_PROPORTION;
    }
    epoch * AUCTION_PROPORTION + offset
}

/// `AuctionGenerator.nextBase0AuctionId`: one of the auctions likely in
/// flight, or a few ahead.
fn next_base0_auction_id(event_id: i64, r: &mut SplittableRandom) -> i64 {
    let max = last_base0_auction_id(event_id);
    let min = (max - NUM_IN_FLIGHT_AUCTIONS).max(0);
    min + r.next_long_bounded(max - min + 1 + AUCTION_ID_LEAD)
}

/// `PriceGenerator.nextPrice`: log-uniform over 1-1,000,000 dollars, in cents.
fn next_price(r: &mut SplittableRandom) -> i64 {
    // Java's Math.round: floor(x + 0.5).
    (10f64.powf(r.next_double() * 6.0) * 100.0 + 0.5).floor() as i64
}

/// `StringsGenerator.nextString(random, maxLength, special)`.
fn next_string(r: &mut SplittableRandom, max_length: i32, special: char) -> String {
    let len = MIN_STRING_LENGTH + r.next_int_bounded(max_length - MIN_STRING_LENGTH);
    let s: String = (0..len)
        .map(|_| if r.next_int_bounded(13) == 0 { special } else { (b'a' + r.next_int_bounded(26) as u8) as char })
        .collect();
    // Java's String.trim (drops characters up to ' ' at both ends).
    s.trim_matches(|c: char| c <= ' ').to_string()
}

/// `StringsGenerator.nextExactString` before the reusable text exists (how
/// the original builds that text): six letters per `nextInt()`, Java's `%`
/// keeping the sign, so some characters fall below `'a'`.
fn exact_string_by_digits(r: &mut SplittableRandom, mut length: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(length);
    let (mut rnd, mut n) = (0i32, 0);
    while length > 0 {
        if n == 0 {
            rnd = r.next_int();
            n = 6;
        }
        out.push((b'a' as i32 + rnd % 26) as u8);
        rnd /= 26;
        n -= 1;
        length -= 1;
    }
    out
}

/// `BidGenerator.getBaseUrl`.
fn base_url(r: &mut SplittableRandom) -> String {
    format!(
        "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
        next_string(r, 5, '_'),
        next_string(r, 5, '_'),
        next_string(r, 5, '_')
    )
}
