//! Tells people from machines on the tracking endpoints, from request headers alone.
//! The rules are the `const` tables below, tried in a fixed order (docs/BOTS.md); a wrong
//! "machine" loses a real visit, so generic rules are written to lean towards "human".

use serde::Serialize;

// ---------------------------------------------------------------------------------------------
// Rule tables. Every token is lowercase ASCII (a test enforces it): `classify` lowercases the
// header once, so a table entry matches whatever case the client sent.
// ---------------------------------------------------------------------------------------------

/// `Sec-Purpose` / `Purpose` values. Chromium sends `prefetch`, `prefetch;prerender` and
/// `prefetch;anonymous-client-ip` for speculative loads nobody has looked at yet; Safari uses
/// `preview` for Top Sites thumbnails.
const PURPOSE_TOKENS: &[&str] = &["prefetch", "prerender", "preview"];

/// `X-Moz`: Firefox marks `<link rel=prefetch>` loads with `X-Moz: prefetch`.
const X_MOZ_TOKENS: &[&str] = &["prefetch"];

/// Browser User-Agents stay well under 512 bytes (the longest in the isbot and device-detector
/// browser fixtures are ~330; WeChat and Douyin in-app strings ~450). Anything longer is not a
/// browser, and refusing to scan it keeps a hostile header from costing CPU on every table. It is
/// also the size of the stack buffer the header is lowercased into.
const MAX_USER_AGENT_BYTES: usize = 1024;

/// Longest `Sec-Purpose` / `X-Moz` value looked at; real ones are a few words.
const MAX_HEADER_BYTES: usize = 128;

/// User-Agents that are a mail proxy when they are the whole header. Apple Mail Privacy
/// Protection has fetched remote images with exactly `Mozilla/5.0` since 2021-09-20
/// (ua-parser/uap-core#509); no browser sends the bare product token.
const MAIL_PROXY_EXACT: &[&str] = &["mozilla/5.0"];

/// Image proxies of mail providers. They fetch the open pixel on the reader's behalf and cache it
/// (Gmail once per message; Apple's proxy at delivery, read or not), so a hit says "a mailbox
/// fetched this", never reliably "a person read it". Sources: the providers' UA strings as
/// catalogued by matomo device-detector (regexes/bots.yml) and the isbot fixtures.
const MAIL_PROXY_TOKENS: &[&str] = &[
    // Gmail: "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    "googleimageproxy",
    "via ggpht.com",
    // Yahoo / AOL: "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
    "yahoomailproxy",
    // Seznam.cz: "Mozilla/5.0 SeznamEmailProxy/2.0.174"
    "seznamemailproxy",
    // Rambler: "RamblerMail/6.0 (incompatible; ImageProxy/6.0)"
    "ramblermail",
    // ukr.net: "... (via secureurl.fwdcdn.com - mail.ukr.net proxy)"
    "secureurl.fwdcdn.com",
];

/// Previewers whose User-Agent *starts* with their name. WhatsApp's fetcher is
/// `WhatsApp/2.23.20.0 A`; anchoring keeps a client that merely mentions whatsapp.com out of it.
const PREFETCH_PREFIXES: &[&str] = &["whatsapp"];

/// Link unfurlers and mail link scanners: they fetch a URL because it was posted or mailed, before
/// (or instead of) anyone clicking it. Names as the services publish them (Slack, X, Meta,
/// Telegram, Microsoft, Discord...) and as catalogued by device-detector and isbot. Chat *apps*
/// are people (Slack's desktop app says "Slack/4.4.2", Viber's browser "Viber/11.9"), so the
/// tokens name the fetchers, not the products.
const PREFETCH_TOKENS: &[&str] = &[
    // Chat and social unfurlers.
    "slackbot", // "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "Slackbot 1.0"
    "slack-imgproxy",
    "twitterbot",
    "facebookexternalhit", // iMessage previews borrow it too
    "telegrambot",
    "skypeuripreview", // Skype and Microsoft Teams
    "discordbot",
    "linkedinbot",
    "redditbot",
    "vkshare",
    "viberurldownloader",
    "kakaotalk-scrap",
    "snap url preview",
    "snapchat-proxy",
    "mastodon/", // every Mastodon server fetches each posted link
    "cardyb",    // Bluesky link cards
    "onebox",    // Discourse
    "embedly",
    "iframely",
    "opengraph",
    "linkexpand", // "Slackbot-LinkExpanding", "Yahoo:LinkExpander:Slingstone"
    "linkpreview",
    "link preview", // "Yahoo Link Preview", "Quora Link Preview"
    "web preview",  // "Google Web Preview"
    "bingpreview",  // Bing snapshots, also seen checking links mailed to Outlook.com
    "microsoftpreview",
    "prefetch proxy", // "Chrome Privacy Preserving Prefetch Proxy"
    // Mail and endpoint security that follows links before (or instead of) the reader.
    "barracuda", // "Barracuda Sentinel (EE)"
    "mimecast",
    "proofpoint",
    "link resolver", // "Kaspersky Lab CFR link resolver"
    // Microsoft Office probing a link before handing it to the browser.
    "existence discovery", // "Microsoft Office Existence Discovery"
    "protocol discovery",  // Office, and "Microsoft Data Access Internet Publishing Provider"
];

/// Office's link check: "Mozilla/4.0 (compatible; ms-office; MSOffice 16)". Outlook for Windows
/// loads a message's images with the same `ms-office` tail next to `Microsoft Outlook 16.0.x`,
/// and that is a person reading mail, so [`OFFICE_MAIL_READER`] exempts it.
const OFFICE_LINK_CHECK: &[&str] = &["ms-office"];
const OFFICE_MAIL_READER: &[&str] = &["microsoft outlook"];

/// Browser automation: the default User-Agent of each tool (Puppeteer and Playwright report
/// HeadlessChrome unless told otherwise), plus render services built on them.
const HEADLESS_TOKENS: &[&str] = &[
    "headless", // "HeadlessChrome/124.0.0.0", chrome-headless-shell
    "phantomjs",
    "slimerjs",
    "puppeteer",
    "playwright",
    "selenium",
    "webdriver",
    "jsdom/",
    "htmlunit",
    "zombie.js",
    "-lighthouse", // "Chrome-Lighthouse" (PageSpeed Insights, Lighthouse CI)
    "cypress/",
    "prerender", // prerender.io: "... Prerender (+https://github.com/prerender/prerender)"
    "rendertron",
    "splash version", // Scrapinghub Splash: "(KHTML, like Gecko) splash Version/10.0"
    "wkhtmlto",       // wkhtmltopdf / wkhtmltoimage
    "webkit2png",
];

/// Everything else that announces itself as a program. Each entry was checked against ~36,000
/// browser, app and device User-Agents (device-detector's and isbot's browser fixtures): none
/// matches a person's browser, except where noted.
const CRAWLER_TOKENS: &[&str] = &[
    // Vocabulary only robots use about themselves (device-detector's generic rule, isbot).
    "+http", // the "(+https://example.com/bot.html)" contact link crawlers carry
    "mailto:",
    "(at)", // "googlebot(at)googlebot.com"
    "[at]",
    "-ai/",   // "Character-AI/1.0", "UdV-AI-Research/1.0"
    "-user/", // AI agents fetching for a user: "ChatGPT-User/1.0", "Perplexity-User/1.0"
    "-extended/",
    "analyzer",
    "archiv", // ia_archiver, archive.org_bot, ArchiveBox, webarchiv
    "audit",
    "checker",
    "collector",
    "favicon",
    "feed",  // feed fetchers: "FeedBurner/1.0", "CommaFeed/1.0", "Feedspot"
    "fetch", // "...Fetcher", "SubstackContentFetch"; Firefox Android's "MozacFetch" is no page view
    "harvester",
    "indexer",
    "inspect", // "CensysInspect", "Ghost Inspector", "Google-InspectionTool"
    "linkcheck",
    "lookup",
    "monitor",
    "parser",
    "probe", // "kube-probe/1.29", "NetLyzer FastProbe"
    "recon",
    "resolver",
    "retriever",
    "scraper",
    "subscriber", // feed fetchers: "Feedbin - 9 subscribers"
    "survey",
    "synthetic", // "RuxitSynthetic", "Splunk Synthetics", "DatadogSynthetics"
    "thumbnail",
    "transcoder",
    "uptime", // UptimeRobot, Uptime-Kuma, Better Uptime
    "validator",
    "verifier",
    "healthcheck",
    "health-check", // "Amazon-Route53-Health-Check-Service", "ELB-HealthChecker"
    "health check",
    // Google's and Meta's fetchers; their apps and browsers never use these forms.
    "google-", // "Google-InspectionTool", "Google-Read-Aloud", "Google-HTTP-Java-Client"...
    "-google", // "Mediapartners-Google", "APIs-Google", "AppEngine-Google"...
    "googleother",
    "googledocs",
    "googlesites",
    "googleproducer",
    "googleassociationservice",
    "google favicon",
    "google search console",
    "google page speed",
    "/+/web/snippet", // Google's page renderer
    "meta-external",  // "meta-externalagent", "meta-externalfetcher", "meta-externalads"
    "meta-webindexer",
    "facebookcatalog",
    "facebookplatform",
    // Search, SEO, AI and security crawlers whose names carry no generic word.
    "(compatible; yandex", // YandexImages, YandexMetrika...; the Yandex *browser* says "YaBrowser"
    "yeti/",               // Naver
    "coccoc",
    "daumoa",
    "ichiro",
    "teoma",
    "heritrix",
    "nutch",
    "gigablast",
    "anthropic",
    "claude-web",
    "devin/",
    "cohere-",
    "ahrefs",
    "semrush",
    "sistrix",
    "seobility",
    "siteimprove",
    "xenu",
    "grammarly",
    "qwantify",
    "dataprovider",
    "datanyze",
    "wappalyzer",
    "cloudflare", // AlwaysOnline, Observatory, AMP, health checks
    "netcraft",
    "censys",
    "shodan",
    "detectify",
    "nmap",
    "zgrab",
    "nuclei",
    "sqlmap",
    "acunetix",
    "burpcollaborator",
    "github-camo",
    "${jndi", // log4shell probes
    // Uptime and performance monitoring that "monitor" and "uptime" miss.
    "pingdom",
    "statuscake",
    "site24x7",
    "newrelicpinger",
    "datadog",
    "checkly",
    "freshping",
    "nodeping",
    "hetrixtools",
    "gtmetrix", // isbot files it under browsers; it is a test run, not a visitor
    "catchpoint",
    "gomezagent",
    "dareboost",
    "yottaa",
    "ptst/", // WebPageTest appends "PTST/<version>" to a browser UA
    "googlehc",
    "prometheus",
    "blackbox exporter",
    "zabbix",
    "nagios",
    "check_http",
    "collectd",
    "munin",
    "xymon",
    "monit/",
    "grafana",
    "sentry/",
    "apachebench",
    "matomo/",
    // HTTP libraries, command-line clients and automation platforms: default User-Agents.
    "curl/", // also an Apple TV app built on libcurl, which is not a person either
    "libcurl",
    "wget",
    "python", // python-requests, Python-urllib, python-httpx, "Python/3.11 aiohttp/3.9"
    "aiohttp",
    "go-http-client",
    "go-resty",
    "java/", // HttpURLConnection; "Java;" (slash-less) appears in J2ME browsers
    "java-http-client",
    "httpurlconnection",
    "okhttp",
    "apache-httpclient",
    "commons-httpclient",
    "grpc-",
    "http-kit",
    "scalaj-http",
    "libwww-perl", // not "libwww": Lynx says "libwww-FM"
    "lwp::",
    "lwp-",
    "lua-resty",
    "node-fetch",
    "axios/",
    "undici",
    "request-promise",
    "sindresorhus/got",
    "guzzlehttp",
    "http.rb/",
    "faraday v",
    "rest-client/",
    "restsharp",
    "postmanruntime",
    "insomnia/",
    "httpie/",
    "scrapy",
    "colly",
    "(dart:io)",
    "deno/",
    "bun/",
    "winhttp",
    "wordpress/",
    "webhook",
    "ifttt",
    "azure-logic-apps",
    "microsoft-flow",
];

/// A generic word that names robots across many products, with the exceptions seen on real
/// devices and apps.
struct Word {
    word: &'static str,
    /// The word must end here (next byte is not a letter; a plural "s" is allowed), so "bot"
    /// catches "Googlebot/2.1" and "robots" but not "Bottle" or "Botim".
    whole: bool,
    /// Text right before the word that makes it part of a product name.
    not_after: &'static [&'static str],
    /// Text right after the word that does the same.
    not_before: &'static [&'static str],
}

/// The generic words, after device-detector's generic bot rule and isbot's pattern list. The
/// exceptions come from their device and browser fixtures: CUBOT phones ("CUBOT_P30",
/// "CUBOT KINGKONG"), Logicom tablets ("POWER BOT", "M bot 60", "IDbot553", "C BOT TAB 10"),
/// XBot Senior/Junior, the "Spider 8" tablet, CamScanner's in-app browser and Presearch. The
/// Logicom "M" is matched as a lone letter (" m ") so "OnlineOrNot.com_bot" stays a bot.
const CRAWLER_WORDS: &[Word] = &[
    Word {
        word: "bot",
        whole: true,
        not_after: &["cu", "power ", "power_", " m ", " m_"],
        not_before: &[
            " tab", "_tab", "5", " 5", "_5", " senior", "_senior", " junior", "_junior",
        ],
    },
    Word {
        word: "crawl",
        whole: false,
        not_after: &[],
        not_before: &[],
    },
    Word {
        word: "spider",
        whole: false,
        not_after: &[],
        not_before: &[" 8"],
    },
    Word {
        word: "slurp",
        whole: false,
        not_after: &[],
        not_before: &[],
    },
    Word {
        word: "scan",
        whole: false,
        not_after: &["cam"],
        not_before: &[],
    },
    Word {
        word: "research",
        whole: false,
        not_after: &["p"],
        not_before: &[],
    },
];

// ---------------------------------------------------------------------------------------------

/// What the request says about the client, taken from headers by the shell.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientHints<'a> {
    pub user_agent: Option<&'a str>,
    /// `Sec-Purpose` or `Purpose` header (e.g. "prefetch", "prefetch;prerender")
    pub purpose: Option<&'a str>,
    /// `X-Moz` header ("prefetch")
    pub x_moz: Option<&'a str>,
    /// `From` header (some crawlers send a contact e-mail here)
    pub from: Option<&'a str>,
}

/// Who is behind a request. The serialized names are the ones in drop reasons (`bot_<class>`)
/// and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Traffic {
    /// A person with a browser, a mail client or an in-app browser.
    Human,
    /// Search, SEO, AI and social crawlers, monitors, HTTP libraries, and requests without a
    /// User-Agent.
    Crawler,
    /// Browser automation: HeadlessChrome, PhantomJS, Puppeteer/Playwright defaults, Selenium,
    /// jsdom, Lighthouse.
    Headless,
    /// Speculative loads and link previewers or scanners: the URL was fetched because it was
    /// shown, posted or mailed, not because someone followed it.
    Prefetch,
    /// A mail provider's image proxy (Gmail, Yahoo, Apple Mail Privacy Protection, ...).
    MailProxy,
}

impl Traffic {
    /// The serialized name: "human", "crawler", "headless", "prefetch", "mail_proxy".
    pub fn as_str(self) -> &'static str {
        match self {
            Traffic::Human => "human",
            Traffic::Crawler => "crawler",
            Traffic::Headless => "headless",
            Traffic::Prefetch => "prefetch",
            Traffic::MailProxy => "mail_proxy",
        }
    }

    /// True for everything that is not a person. MailProxy counts as machine traffic.
    pub fn is_machine(self) -> bool {
        self != Traffic::Human
    }
}

/// Classifies a request. Missing or empty User-Agent = Crawler. Runs on every tracking hit, so it
/// allocates nothing (the User-Agent is lowercased into a stack buffer once, then searched for
/// each table entry) and cannot panic on any header value.
pub fn classify(hints: &ClientHints<'_>) -> Traffic {
    // A prefetch header is the browser itself saying nobody asked for this yet, whatever the UA.
    if header_has(hints.purpose, PURPOSE_TOKENS) || header_has(hints.x_moz, X_MOZ_TOKENS) {
        return Traffic::Prefetch;
    }
    let ua = hints.user_agent.unwrap_or("").trim();
    let mut buf = [0u8; MAX_USER_AGENT_BYTES];
    let ua = match lowercase_into(ua, &mut buf) {
        Some(ua) if !ua.is_empty() => ua,
        _ => return Traffic::Crawler, // missing, blank, or longer than any browser's
    };
    let hay = Haystack::new(ua);
    if MAIL_PROXY_EXACT.contains(&ua) || hay.contains_any(MAIL_PROXY_TOKENS) {
        return Traffic::MailProxy;
    }
    if PREFETCH_PREFIXES.iter().any(|t| ua.starts_with(t))
        || hay.contains_any(PREFETCH_TOKENS)
        || (hay.contains_any(OFFICE_LINK_CHECK) && !hay.contains_any(OFFICE_MAIL_READER))
    {
        return Traffic::Prefetch;
    }
    if hay.contains_any(HEADLESS_TOKENS) {
        return Traffic::Headless;
    }
    if hay.contains_any(CRAWLER_TOKENS) || CRAWLER_WORDS.iter().any(|w| has_word(&hay, w)) {
        return Traffic::Crawler;
    }
    // Browsers never send `From`; a client that does identifies itself as an operated robot.
    if hints.from.is_some_and(|f| !f.trim().is_empty()) {
        return Traffic::Crawler;
    }
    Traffic::Human
}

fn header_has(value: Option<&str>, tokens: &[&str]) -> bool {
    let mut buf = [0u8; MAX_HEADER_BYTES];
    value
        .and_then(|v| lowercase_into(v, &mut buf))
        .is_some_and(|v| contains_any(v, tokens))
}

/// ASCII-lowercases `s` into `buf`, so every table lookup after it is a plain substring search
/// and nothing is allocated. Only ASCII bytes change, so the copy is still UTF-8. `None` when `s`
/// does not fit.
fn lowercase_into<'b>(s: &str, buf: &'b mut [u8]) -> Option<&'b str> {
    let out = buf.get_mut(..s.len())?;
    out.copy_from_slice(s.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

fn contains_any(ua: &str, tokens: &[&str]) -> bool {
    tokens.iter().any(|t| ua.contains(t))
}

/// Bits in the set of byte pairs a [`Haystack`] keeps.
const PAIR_BITS: usize = 1024;

/// A lowercased User-Agent with the set of adjacent byte pairs it contains (hashed into
/// `PAIR_BITS` bits). A browser's User-Agent matches none of the ~300 table entries, and a
/// substring search per entry was most of what `classify` cost; an entry whose first, middle or
/// last two bytes never occur side by side in the header cannot occur in it, so most entries
/// are ruled out by two bit tests, and nearly all the rest by a third (a browser's header
/// leaves a handful of ~300 entries to search instead of ~20). The set only rules out, never
/// in: every match is still a substring search.
struct Haystack<'a> {
    text: &'a str,
    pairs: [u64; PAIR_BITS / 64],
}

impl<'a> Haystack<'a> {
    fn new(text: &'a str) -> Self {
        let mut pairs = [0u64; PAIR_BITS / 64];
        for w in text.as_bytes().windows(2) {
            let bit = pair_bit(w[0], w[1]);
            pairs[bit / 64] |= 1 << (bit % 64);
        }
        Haystack { text, pairs }
    }

    // Inlined: it runs for every table entry, and a call costs as much as the test.
    #[inline(always)]
    fn has_pair(&self, a: u8, b: u8) -> bool {
        let bit = pair_bit(a, b);
        self.pairs[bit / 64] & (1 << (bit % 64)) != 0
    }

    /// False only when `token` cannot occur in the text.
    #[inline(always)]
    fn may_contain(&self, token: &str) -> bool {
        let t = token.as_bytes();
        match t.len() {
            0 | 1 => true,
            n => {
                self.has_pair(t[0], t[1])
                    && self.has_pair(t[n - 2], t[n - 1])
                    && self.has_pair(t[n / 2 - 1], t[n / 2])
            }
        }
    }

    fn contains_any(&self, tokens: &[&str]) -> bool {
        tokens
            .iter()
            .any(|t| self.may_contain(t) && self.text.contains(t))
    }
}

#[inline(always)]
fn pair_bit(a: u8, b: u8) -> usize {
    (usize::from(a) * 31 + usize::from(b)) % PAIR_BITS
}

/// Whether `word` occurs anywhere in the User-Agent outside its listed exceptions.
fn has_word(hay: &Haystack<'_>, word: &Word) -> bool {
    if !hay.may_contain(word.word) {
        return false;
    }
    let ua = hay.text;
    ua.match_indices(word.word).any(|(at, w)| {
        let (before, after) = (&ua[..at], &ua[at + w.len()..]);
        let excepted = word.not_after.iter().any(|p| before.ends_with(p))
            || word.not_before.iter().any(|s| after.starts_with(s));
        !excepted && (!word.whole || ends_word(after))
    })
}

/// True when `after` does not continue the word: no letter follows, save a plural "s".
fn ends_word(after: &str) -> bool {
    let after = after.strip_prefix('s').unwrap_or(after);
    !after.starts_with(|c: char| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ua(user_agent: &str) -> Traffic {
        classify(&ClientHints {
            user_agent: Some(user_agent),
            ..ClientHints::default()
        })
    }

    fn assert_all(expected: Traffic, agents: &[&str]) {
        for agent in agents {
            assert_eq!(ua(agent), expected, "{agent}");
        }
    }

    const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

    #[test]
    fn the_pair_filter_only_rules_out_entries_that_cannot_match() {
        let tables = [
            MAIL_PROXY_TOKENS,
            PREFETCH_TOKENS,
            OFFICE_LINK_CHECK,
            OFFICE_MAIL_READER,
            HEADLESS_TOKENS,
            CRAWLER_TOKENS,
        ];
        let words: Vec<&str> = CRAWLER_WORDS.iter().map(|w| w.word).collect();
        for table in tables.iter().copied().chain([&words[..]]) {
            for token in table {
                for text in [
                    token.to_string(),
                    format!("mozilla/5.0 (x; {token}) applewebkit/537.36"),
                    format!("{token}{token}"),
                ] {
                    let hay = Haystack::new(&text);
                    assert!(hay.may_contain(token), "{token} in {text}");
                    assert!(hay.contains_any(table), "{token} in {text}");
                }
            }
            for text in [
                CHROME_WINDOWS.to_ascii_lowercase(),
                String::new(),
                "b".into(),
            ] {
                let hay = Haystack::new(&text);
                assert_eq!(
                    hay.contains_any(table),
                    contains_any(&text, table),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn desktop_and_mobile_browsers_are_human() {
        assert_all(
            Traffic::Human,
            &[
                CHROME_WINDOWS,
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
                "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
                "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/125.0 Mobile/15E148 Safari/605.1.15",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
                "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36 EdgA/124.0.0.0",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/124.0.2478.50 Mobile/15E148 Safari/605.1.15",
                "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/110.0.0.0",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 YaBrowser/23.11.0.0 Safari/537.36",
            ],
        );
    }

    #[test]
    fn chinese_browsers_and_in_app_browsers_are_human() {
        // Captured strings (device-detector fixtures; Douyin from public UA-parsing code).
        assert_all(
            Traffic::Human,
            &[
                // WeChat: XWEB and TBS (QQ Browser engine) builds
                "Mozilla/5.0 (Linux; Android 12; LGE-AN10 Build/HONORLGE-AN10; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/86.0.4240.99 XWEB/3211 MMWEBSDK/20220303 Mobile Safari/537.36 MMWEBID/7223 MicroMessenger/8.0.21.2120(0x2800153B) Process/toolsmp WeChat/arm64 Weixin NetType/5G Language/zh_CN ABI/arm64",
                "Mozilla/5.0 (Linux; Android 8.1.0; JKM-AL00 Build/HUAWEIJKM-AL00; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/66.0.3359.126 MQQBrowser/6.2 TBS/044432 Mobile Safari/537.36 MMWEBID/1418 MicroMessenger/7.0.1380(0x2700003A) Process/tools NetType/4G Language/zh_CN",
                // Douyin
                "Mozilla/5.0 (Linux; Android 10; WLZ-AN00 Build/HUAWEIWLZ-AN00; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/75.0.3770.156 Mobile Safari/537.36 aweme_130600 JsSdk/1.0 NetType/4G Channel/huawei_1 AppName/aweme app_version/13.6.0 ByteLocale/zh-Hans-CN Region/CN AppSkin/black AppTheme/dark TTWebView/0751130011409",
                "Mozilla/5.0 (Linux; Android 12; M2102J2SC Build/SKQ1.211006.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/75.0.3770.156 Mobile Safari/537.36 aweme_210600 JsSdk/1.0 NetType/4G Channel/xiaomi_1128_64 AppName/aweme app_version/21.6.0 ByteLocale/zh-CN Region/CN AppSkin/black AppTheme/dark BytedanceWebview/d8a21c6 TTWebView/0751130025454",
                // QQ (iOS in-app), UC Browser, Baidu app, Sogou Explorer
                "Mozilla/5.0 (iPhone; CPU iPhone OS 16_7_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 QQ/8.9.85.608 V1_IPH_SQ_8.9.85_1_APP_A Pixel/1080 MiniAppEnable SimpleUISwitch/0 StudyMode/0 CurrentMode/0 CurrentFontScale/1.117647 QQTheme/1000 AppId/537179600 Core/WKWebView Device/Apple(iPhone 13 mini) NetType/WIFI QBWebViewType/1 WKType/1",
                "Mozilla/5.0 (Linux; U; Android 12; en-US; Sparx Neo 7 Ultra 8GB Build/SP1A.210812.016) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/78.0.3904.108 UCBrowser/13.6.2.1316 Mobile Safari/537.36",
                "UCWEB/2.0 (Java; U; MIDP-2.0; ru; NokiaE71-1Opera/9.80 (J2ME/MIDP; Opera Mini/8.0.35626/19.886; U; ru) UCBrowser/9.5.0.449 U2/1.0.0 Mobile UNTRUSTED/1.0",
                "Mozilla/5.0 (Linux; Android 12; BAL-AL80 Build/HUAWEIBAL-AL80; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/97.0.4692.98 Mobile Safari/537.36 T7/13.51 BDOS/1.0 (HarmonyOS 3.0.0) light/1.0 SP-engine/2.81.0 matrixstyle/0 lite baiduboxapp/6.25.0.10 (Baidu; P1 12)",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 11_0 like Mac OS X) AppleWebKit/604.1.38 (KHTML, like Gecko) Version/11.0 Mobile/15A372 Safari/604.1 SE 2.X MetaSr 1.0",
                // Facebook, Instagram, LinkedIn, Pinterest, Viber in-app browsers
                "Mozilla/5.0 (iPhone; CPU iPhone OS 13_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/239.0.0.52.149;FBBV/172924969;FBDV/iPhone12,3;FBMD/iPhone;FBSN/iOS;FBSV/13.0;FBSS/3;FBID/phone;FBLC/de_DE;FBOP/5;FBRV/174725516;FBCR/Telekom.de]",
                "Mozilla/5.0 (Linux; Android 12; moto g(50) 5G Build/S1RSS32.38-20-9-13; wv) AppleWebKit/537.36 (KHTML,like Gecko) Version/4.0 Chrome/124.0.6367.180 Mobile Safari/537.36 Instagram 333.0.0.42.91 Android (31/12; 280dpi; 720x1462; motorola; moto g(50) 5G; saipan; mt6833; pt_BR; 604247853)",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 12_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [LinkedInApp]",
                "Mozilla/5.0 (Linux; Android 5.1; HUAWEI LUA-L23 Build/HUAWEILUA-L23; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/69.0.3497.100 Mobile Safari/537.36 [Pinterest/Android]",
                "Mozilla/5.0 (Linux; Android 7.1.2; G011A Build/N2G48H; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/66.0.3359.158 Safari/537.36 Viber/11.9.5.8",
                "Mozilla/5.0 (Windows NT 10.0.18362; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.4.2 Chrome/78.0.3904.130 Electron/7.2.1 Safari/537.36 WindowsStore/10.0.18362 Sonic Slack_SSB/4.4.2",
            ],
        );
    }

    #[test]
    fn mail_clients_loading_images_for_their_reader_are_human() {
        assert_all(
            Traffic::Human,
            &[
                // Apple Mail on macOS (MPP off): WebKit without a Safari token
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
                // Outlook for Windows, both image-loading shapes; the second carries "ms-office"
                "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.4266; Pro)",
                "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; .NET4.0E; .NET CLR 2.0.50727; .NET CLR 3.0.30729; .NET CLR 3.5.30729; Microsoft Outlook 16.0.9126; Microsoft Outlook 16.0.9126; ms-office; MSOffice 16)",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 13_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MailMaster/6.22.4.1582",
            ],
        );
    }

    #[test]
    fn generic_words_spare_device_and_app_names() {
        // Captured strings from device-detector's and isbot's browser fixtures.
        assert_all(
            Traffic::Human,
            &[
                "Mozilla/5.0 (Linux; Android 8.0.0; CUBOT_P20) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.110 Mobile Safari/537.36",
                "Mozilla/5.0 (Linux; Android 6.0; CUBOT MAX Build/MRA58K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.81 Mobile Safari/537.36",
                "Mozilla/5.0 (Linux; Android 6.0; POWER BOT Build/MRA58K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/54.0.2840.85 Mobile Safari/537.36",
                "Mozilla/5.0 (Linux; Android 7.0; M bot 60 Build/NRD90M) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/58.0.3029.83 Mobile Safari/537.36",
                "Mozilla/5.0 (Linux; Android 6.0; IDbot553 Build/MRA58K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/59.0.3071.125 Mobile Safari/537.36",
                "Mozilla/5.0 (Linux; Android 7.0; C Bot Tab 70) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/78.0.3904.108 Safari/537.36",
                "Mozilla/5.0 (Linux; Android 8.1.0; XBot_Senior Build/O11019) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/65.0.3325.109 Mobile Safari/537.36",
                "Mozilla/5.0 (Linux; Android 13; Spider 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.123 Mobile Safari/537.36 CamScanner/4.8.5.2310271827",
            ],
        );
    }

    #[test]
    fn programs_describing_themselves_are_crawlers() {
        assert_all(
            Traffic::Crawler,
            &[
                "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)",
                "Mozilla/5.0 (compatible; Dataprovider/6.92; +https://www.dataprovider.com/)",
                "Mozilla/5.0 (compatible; CloudFlare-AlwaysOnline/1.0; +http://www.cloudflare.com/always-online) AppleWebKit/534.34",
                "Mozilla/5.0 (compatible; PRTG Network Monitor (www.paessler.com); Windows)",
                "Mozilla/5.0 (X11; Linux x86_64; Splunk Synthetics) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.6533.88 Safari/537.36",
                "Feedbin - 9 subscribers",
                "CommaFeed/1.0 (http://www.commafeed.com)",
                "Mozilla/5.0 (compatible; Google-InspectionTool/1.0;)",
                "OnlineOrNot.com_bot_1.0_(https://onlineornot.com)",
                "Mozilla/5.0 (compatible; um-FC/1.0; mailto: techinfo@ubermetrics-technologies.com)",
            ],
        );
    }

    #[test]
    fn search_seo_and_ai_crawlers() {
        assert_all(
            Traffic::Crawler,
            &[
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.91 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                "Googlebot-Image/1.0",
                "Mediapartners-Google",
                "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
                "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
                "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
                "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
                "Mozilla/5.0 (compatible; YandexImages/3.0; +http://yandex.com/bots)",
                "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)",
                "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.1 (KHTML, like Gecko) Chrome/21.0.1180.89 Safari/537.1; 360Spider",
                "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/69.0.3497.81 YisouSpider/5.0 Safari/537.36",
                "Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
                "Mozilla/5.0 (compatible; Yeti/1.1; +http://naver.me/spd)",
                "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
                "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
                "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
                "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
                "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
                "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)",
                "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot",
                "Mozilla/5.0 (compatible; meta-externalagent/1.1)",
                "CCBot/2.0 (https://commoncrawl.org/faq/)",
                "Mozilla/5.0 (compatible; Linux x86_64; Mail.RU_Bot/2.0; +http://go.mail.ru/help/robots)",
                "Mozilla/5.0 (compatible; Pinterestbot/1.0; +http://www.pinterest.com/bot.html)",
                "Screaming Frog SEO Spider/19.8",
                "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
            ],
        );
    }

    #[test]
    fn monitors_and_http_libraries() {
        assert_all(
            Traffic::Crawler,
            &[
                "curl/8.5.0",
                "Wget/1.21.4",
                "python-requests/2.31.0",
                "Python-urllib/3.11",
                "python-httpx/0.27.0",
                "Python/3.11 aiohttp/3.9.5",
                "Go-http-client/1.1",
                "Go-http-client/2.0",
                "Java/1.8.0_151",
                "Java-http-client/17.0.2",
                "okhttp/4.12.0",
                "Apache-HttpClient/4.5.13 (Java/11.0.11)",
                "libwww-perl/6.72",
                "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
                "axios/1.6.7",
                "undici",
                "GuzzleHttp/7",
                "PostmanRuntime/7.37.3",
                "Dart/3.3 (dart:io)",
                "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
                "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
                "Amazon-Route53-Health-Check-Service (ref b0eb04d5-cb5e-40e7-839b-558e52fc3f0d; report http://amzn.to/1vsZADi)",
                "ELB-HealthChecker/2.0",
                "kube-probe/1.29",
                "Datadog Agent/7.52.0",
            ],
        );
    }

    #[test]
    fn missing_blank_and_oversized_user_agents_are_crawlers() {
        assert_eq!(classify(&ClientHints::default()), Traffic::Crawler);
        assert_eq!(ua(""), Traffic::Crawler);
        assert_eq!(ua(" \t "), Traffic::Crawler);
        let long = format!("{CHROME_WINDOWS} {}", "x".repeat(100 * 1024));
        assert_eq!(ua(&long), Traffic::Crawler);
    }

    #[test]
    fn a_from_header_marks_an_otherwise_unknown_client_as_crawler() {
        let hints = ClientHints {
            user_agent: Some("Mozilla/5.0 (compatible; ExampleResearch/1.0)"),
            from: Some("research@example.org"),
            ..ClientHints::default()
        };
        assert_eq!(classify(&hints), Traffic::Crawler);
        let blank_from = ClientHints {
            user_agent: Some(CHROME_WINDOWS),
            from: Some("  "),
            ..ClientHints::default()
        };
        assert_eq!(classify(&blank_from), Traffic::Human);
    }

    #[test]
    fn headless_browsers() {
        assert_all(
            Traffic::Headless,
            &[
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.28 Safari/537.36",
                "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
                "Mozilla/5.0 (linux) AppleWebKit/537.36 (KHTML, like Gecko) jsdom/22.1.0",
                "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Cypress/3.3.2 Chrome/61.0.3163.100 Electron/2.0.18 Safari/537.36",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Prerender (+https://github.com/prerender/prerender)",
            ],
        );
    }

    #[test]
    fn link_previewers_and_scanners_are_prefetch() {
        assert_all(
            Traffic::Prefetch,
            &[
                "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
                "Slack-ImgProxy (+https://api.slack.com/robots)",
                "Twitterbot/1.0",
                "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
                "facebookexternalhit/1.1 Facebot Twitterbot/1.0",
                "WhatsApp/2.23.20.0 A",
                "WhatsApp/2.2123.8 N",
                "TelegramBot (like TwitterBot)",
                "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
                "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
                "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
                "Mozilla/5.0 (compatible; redditbot/1.0; +http://www.reddit.com/feedback)",
                "Mozilla/5.0 (compatible; vkShare; +http://vk.com/dev/Share)",
                "http.rb/3.2.0 (Mastodon/2.4.3; +https://uwu.social/)",
                "Mozilla/5.0 (compatible; Embedly/0.2; +http://support.embed.ly/)",
                "Mozilla/4.0 (compatible; ms-office; MSOffice 16)",
                "Microsoft Office Existence Discovery",
                "Microsoft Office Protocol Discovery",
                "Barracuda Sentinel (EE)",
            ],
        );
    }

    #[test]
    fn prefetch_headers_win_over_any_user_agent() {
        let chrome = Some(CHROME_WINDOWS);
        for (purpose, x_moz) in [
            (Some("prefetch"), None),
            (Some("prefetch;prerender"), None),
            (Some("Prefetch;anonymous-client-ip"), None),
            (Some("preview"), None),
            (None, Some("prefetch")),
        ] {
            let hints = ClientHints {
                user_agent: chrome,
                purpose,
                x_moz,
                from: None,
            };
            assert_eq!(classify(&hints), Traffic::Prefetch, "{purpose:?} {x_moz:?}");
        }
        let no_ua = ClientHints {
            purpose: Some("prefetch"),
            ..ClientHints::default()
        };
        assert_eq!(classify(&no_ua), Traffic::Prefetch);
        let unrelated = ClientHints {
            user_agent: chrome,
            purpose: Some("navigate"),
            x_moz: Some(""),
            from: None,
        };
        assert_eq!(classify(&unrelated), Traffic::Human);
    }

    #[test]
    fn mail_provider_image_proxies() {
        assert_all(
            Traffic::MailProxy,
            &[
                "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
                "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
                "YahooMailProxy;%20https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
                "Mozilla/5.0",
                "mozilla/5.0 ",
                "Mozilla/5.0 SeznamEmailProxy/2.0.174",
                "RamblerMail/6.0 (incompatible; ImageProxy/6.0)",
                "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/55.0.2883.87 Safari/537.36 (via secureurl.fwdcdn.com - mail.ukr.net proxy)",
            ],
        );
        // Only the bare product token is Apple's proxy; anything after it is some other client.
        assert_ne!(ua("Mozilla/5.0 (compatible)"), Traffic::MailProxy);
    }

    #[test]
    fn the_order_of_the_rules_decides_overlaps() {
        // previewer beats the generic "bot" word and the HTTP library it is built on
        assert_eq!(ua("TelegramBot (like TwitterBot)"), Traffic::Prefetch);
        assert_eq!(
            ua("LinkedInBot/1.0 (compatible; Mozilla/5.0; Jakarta Commons-HttpClient/3.1 +http://www.linkedin.com)"),
            Traffic::Prefetch
        );
        // headless beats the crawler rules
        assert_eq!(
            ua("Mozilla/5.0 HeadlessChrome/120.0.0.0 Safari/537.36 (compatible; ExampleBot/1.0)"),
            Traffic::Headless
        );
        // a generic word is still found after an excepted occurrence
        assert_eq!(
            ua("Mozilla/5.0 (Linux; Android 9; CUBOT_P30) Mobile Safari/537.36 (compatible; ExampleBot/1.0)"),
            Traffic::Crawler
        );
    }

    #[test]
    fn case_does_not_matter() {
        assert_eq!(
            ua("MOZILLA/5.0 (COMPATIBLE; GOOGLEBOT/2.1)"),
            Traffic::Crawler,
        );
        assert_eq!(ua("headlesschrome/124.0"), Traffic::Headless);
        assert_eq!(ua("GOOGLEIMAGEPROXY"), Traffic::MailProxy);
    }

    #[test]
    fn odd_input_never_panics() {
        let odd = [
            "\0",
            "\u{7f}\u{1}\u{2}",
            "b",
            "bo",
            "bot",
            "bots",
            "s",
            "cubot",
            "CU",
            "whatsap",
            "ms-office microsoft outloo",
            "Mozilla/5.0 (😀; 中文; Ünïcödé) bot",
            "機器人 蜘蛛 爬虫",
            "\u{feff}Mozilla/5.0",
            "()()()((((;;;;////",
        ];
        for s in odd {
            let _ = ua(s);
            let hints = ClientHints {
                user_agent: Some(s),
                purpose: Some(s),
                x_moz: Some(s),
                from: Some(s),
            };
            let _ = classify(&hints);
        }
        // every truncation of a mixed-script UA, including ones that end on a token's first bytes
        let sample = "Mozilla/5.0 (Linux; CUBOT_P30; 中文) Googlebot/2.1 spider scan slurp crawl";
        for (i, _) in sample.char_indices() {
            let _ = ua(&sample[..i]);
            let _ = ua(&sample[i..]);
        }
        let at_cap = format!("{}bot", "a".repeat(MAX_USER_AGENT_BYTES - 3));
        assert_eq!(ua(&at_cap), Traffic::Crawler);
        assert_eq!(ua(&"a".repeat(MAX_USER_AGENT_BYTES + 1)), Traffic::Crawler);
        assert_eq!(ua(&"é".repeat(100 * 1024)), Traffic::Crawler);
    }

    #[test]
    fn tokens_are_lowercase_ascii_and_non_empty() {
        let tables: [&[&str]; 9] = [
            PURPOSE_TOKENS,
            X_MOZ_TOKENS,
            MAIL_PROXY_EXACT,
            MAIL_PROXY_TOKENS,
            PREFETCH_PREFIXES,
            PREFETCH_TOKENS,
            OFFICE_LINK_CHECK,
            OFFICE_MAIL_READER,
            HEADLESS_TOKENS,
        ];
        let words = CRAWLER_WORDS.iter().flat_map(|w| {
            std::iter::once(w.word)
                .chain(w.not_after.iter().copied())
                .chain(w.not_before.iter().copied())
        });
        let all = tables
            .iter()
            .flat_map(|t| t.iter().copied())
            .chain(CRAWLER_TOKENS.iter().copied())
            .chain(words);
        for token in all {
            assert!(!token.is_empty());
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii() && !b.is_ascii_uppercase()),
                "{token:?} must be lowercase ASCII"
            );
        }
    }

    #[test]
    fn names_match_serde_and_only_humans_are_people() {
        for t in [
            Traffic::Human,
            Traffic::Crawler,
            Traffic::Headless,
            Traffic::Prefetch,
            Traffic::MailProxy,
        ] {
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.as_str())
            );
            assert_eq!(t.is_machine(), t != Traffic::Human);
        }
        assert!(Traffic::MailProxy.is_machine());
    }
}
