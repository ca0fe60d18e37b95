//! What the request says about its sender: bot signals, origin, privacy signals.

use kindling::bot::{classify, ClientHints, Traffic};
use kindling::event::DropReason;
use worker::Request;

pub struct Client {
    pub traffic: Traffic,
    pub origin: Option<String>,
    /// `DNT: 1` or `Sec-GPC: 1`.
    pub opted_out: bool,
}

impl Client {
    pub fn of(req: &Request) -> Client {
        let h = |name: &str| req.headers().get(name).ok().flatten();
        let (ua, purpose, x_moz, from) = (
            h("User-Agent"),
            h("Sec-Purpose").or_else(|| h("Purpose")),
            h("X-Moz"),
            h("From"),
        );
        let traffic = classify(&ClientHints {
            user_agent: ua.as_deref(),
            purpose: purpose.as_deref(),
            x_moz: x_moz.as_deref(),
            from: from.as_deref(),
        });
        Client {
            traffic,
            origin: h("Origin").filter(|o| o != "null"),
            opted_out: h("DNT").as_deref() == Some("1") || h("Sec-GPC").as_deref() == Some("1"),
        }
    }

    /// The drop reason for machine traffic on page tracking (pixels and beacons).
    pub fn bot_drop(&self) -> Option<DropReason> {
        match self.traffic {
            Traffic::Human => None,
            Traffic::Crawler => Some(DropReason::BotCrawler),
            Traffic::Headless => Some(DropReason::BotHeadless),
            Traffic::Prefetch => Some(DropReason::BotPrefetch),
            Traffic::MailProxy => Some(DropReason::BotMailProxy),
        }
    }
}
