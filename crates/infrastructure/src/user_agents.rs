//! User-agent classification: woothee's data set for browser, OS and device,
//! `isbot`'s maintained crawler patterns for the bot flag (either one saying
//! "crawler" makes a bot). Results are cached per distinct user agent. Runs when
//! a flush is folded, never on the redirect path.

use std::collections::HashMap;
use std::sync::Mutex;

use offndat_application::ports::UserAgentClassifier;
use offndat_domain::audience::OTHER;
use offndat_domain::visit::MAX_USER_AGENT_CHARS;
use offndat_domain::{DeviceClass, UserAgentClass};

/// Most user agents remembered, and most bytes they may take (keys, classes and
/// the map's own share); the cache starts over when either is reached (the set
/// of user agents seen in practice is small; a flood of made-up ones must not
/// grow it). Keys are cut to the stored 512 characters first.
const CACHE_ENTRIES: usize = 20_000;
const CACHE_BYTES: usize = 8 * 1024 * 1024;
/// What an entry is reckoned to cost besides its text (two `String`s, the
/// class, the map's slot and control byte).
const ENTRY_OVERHEAD: usize = 128;

/// woothee + isbot, with a cache.
pub struct UserAgents {
    parser: woothee::parser::Parser,
    bots: isbot::Bots,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    classes: HashMap<String, UserAgentClass>,
    bytes: usize,
}

impl Cache {
    fn get(&self, user_agent: &str) -> Option<UserAgentClass> {
        self.classes.get(user_agent).cloned()
    }

    fn insert(&mut self, user_agent: &str, class: &UserAgentClass) {
        let size = ENTRY_OVERHEAD + user_agent.len() + class.browser.len() + class.os.len();
        if self.classes.len() >= CACHE_ENTRIES || self.bytes + size > CACHE_BYTES {
            self.classes.clear();
            self.bytes = 0;
        }
        if self.classes.insert(user_agent.to_owned(), class.clone()).is_none() {
            self.bytes += size;
        }
    }
}

impl Default for UserAgents {
    fn default() -> Self {
        Self { parser: woothee::parser::Parser::new(), bots: isbot::Bots::default(), cache: Mutex::default() }
    }
}

/// `user_agent` cut to the stored 512 characters: what is classified and
/// cached, however long the header.
fn cut(user_agent: &str) -> &str {
    match user_agent.char_indices().nth(MAX_USER_AGENT_CHARS) {
        Some((at, _)) => &user_agent[..at],
        None => user_agent,
    }
}

impl UserAgents {
    fn parse(&self, user_agent: &str) -> UserAgentClass {
        let parsed = self.parser.parse(user_agent);
        let (name, category, os) = parsed.as_ref().map_or(("", "", ""), |r| (r.name, r.category, r.os));
        let bot = self.bot(category, user_agent);
        fn known(s: &str) -> &str {
            if s.is_empty() || s == woothee::woothee::VALUE_UNKNOWN { OTHER } else { s }
        }
        let os_family = os_family(known(os));
        let device = if bot {
            DeviceClass::Bot
        } else {
            match category {
                "pc" if os_family == "ChromeOS" || !user_agent.contains("Mobile") => DeviceClass::Desktop,
                "smartphone" | "mobilephone" if is_tablet(os, user_agent) => DeviceClass::Tablet,
                "smartphone" | "mobilephone" => DeviceClass::Mobile,
                "pc" => DeviceClass::Mobile,
                _ => DeviceClass::Other,
            }
        };
        let browser = if bot && known(name) == OTHER { "Bot" } else { known(name) };
        UserAgentClass { bot, browser: browser.to_owned(), os: os_family.to_owned(), device }
    }

    /// woothee's crawler category or isbot's patterns.
    fn bot(&self, woothee_category: &str, user_agent: &str) -> bool {
        woothee_category == "crawler" || self.bots.is_bot(user_agent)
    }
}

impl UserAgentClassifier for UserAgents {
    fn classify(&self, user_agent: &str) -> UserAgentClass {
        let user_agent = cut(user_agent);
        if let Some(class) = self.cache.lock().ok().and_then(|c| c.get(user_agent)) {
            return class;
        }
        let class = self.parse(user_agent);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(user_agent, &class);
        }
        class
    }
    fn is_bot(&self, user_agent: &str) -> bool {
        let user_agent = cut(user_agent);
        if let Some(class) = self.cache.lock().ok().and_then(|c| c.get(user_agent)) {
            return class.bot;
        }
        // Not cached: a flood of one-off agents must not evict the common ones.
        let category = self.parser.parse(user_agent).map_or("", |r| r.category);
        self.bot(category, user_agent)
    }
}

/// Versions folded into families: `Windows 10` → `Windows`, `iPhone` → `iOS`.
fn os_family(os: &str) -> &str {
    match os {
        "iPhone" | "iPad" | "iPod" => "iOS",
        "Mac OSX" => "macOS",
        "Windows Phone OS" => "Windows Phone",
        s if s.starts_with("Windows") => "Windows",
        s => s,
    }
}

fn is_tablet(os: &str, user_agent: &str) -> bool {
    // Android tablets leave `Mobile` out of their user agent.
    os == "iPad" || user_agent.contains("Tablet") || (os == "Android" && !user_agent.contains("Mobile"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ua: &str) -> (bool, String, String, DeviceClass) {
        let c = UserAgents::default().classify(ua);
        (c.bot, c.browser, c.os, c.device)
    }

    #[test]
    fn browsers_systems_and_devices() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";
        assert_eq!(class(chrome), (false, "Chrome".into(), "Windows".into(), DeviceClass::Desktop));
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(class(iphone), (false, "Safari".into(), "iOS".into(), DeviceClass::Mobile));
        let ipad = "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(class(ipad).3, DeviceClass::Tablet);
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert_eq!(class(firefox), (false, "Firefox".into(), "Linux".into(), DeviceClass::Desktop));
        let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36";
        assert_eq!(class(android), (false, "Chrome".into(), "Android".into(), DeviceClass::Mobile));
    }

    #[test]
    fn crawlers_are_bots_whichever_list_knows_them() {
        let google = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        let (bot, browser, _, device) = class(google);
        assert!(bot);
        assert_eq!((browser.as_str(), device), ("Googlebot", DeviceClass::Bot));
        assert!(class("python-requests/2.31").0);
    }

    #[test]
    fn the_cache_is_bounded_in_entries_and_in_bytes_and_keys_are_cut() {
        let agents = UserAgents::default();
        let huge =
            format!("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0 {}", "x".repeat(16 * 1024));
        let class = agents.classify(&huge);
        assert_eq!(class.browser, "Firefox");
        {
            let cache = agents.cache.lock().expect("lock");
            let key = cache.classes.keys().next().expect("cached");
            assert_eq!(key.chars().count(), MAX_USER_AGENT_CHARS, "the key is cut");
        }
        assert_eq!(agents.classify(&format!("{huge}and more")), class, "same stored form, same entry");
        assert_eq!(agents.cache.lock().expect("lock").classes.len(), 1);
        // A flood of distinct long agents: the bytes bound is reached before the
        // entries bound, and neither is passed.
        for i in 0..16_000 {
            agents.classify(&format!("{i:06} {}", "y".repeat(600)));
            let cache = agents.cache.lock().expect("lock");
            assert!(cache.classes.len() <= CACHE_ENTRIES && cache.bytes <= CACHE_BYTES);
        }
        let cache = agents.cache.lock().expect("lock");
        let counted: usize =
            cache.classes.iter().map(|(k, c)| ENTRY_OVERHEAD + k.len() + c.browser.len() + c.os.len()).sum();
        assert_eq!(cache.bytes, counted);
        assert!(cache.classes.len() < CACHE_BYTES / 600, "bounded by bytes: {}", cache.classes.len());
    }

    #[test]
    fn nonsense_is_other_and_cached() {
        let agents = UserAgents::default();
        let first = agents.classify("<script>alert(1)</script>");
        assert_eq!(first, agents.classify("<script>alert(1)</script>"));
        assert_eq!((first.browser.as_str(), first.os.as_str()), (OTHER, OTHER));
    }
}
