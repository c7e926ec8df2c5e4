"""Word lists for the firm generator (fictional people and businesses)."""

FIRST_NAMES = (
    "Olivia", "Liam", "Charlotte", "Noah", "Amelia", "Oliver", "Isla", "Jack", "Mia", "William",
    "Ava", "Henry", "Grace", "Leo", "Chloe", "Thomas", "Ruby", "James", "Sophie", "Lucas",
    "Emily", "Harrison", "Zoe", "Ethan", "Matilda", "Samuel", "Ella", "Max", "Harper", "Daniel",
    "Priya", "Arjun", "Mei", "Wei", "Hiroshi", "Yuki", "Fatima", "Omar", "Aisha", "Mohammed",
    "Siobhán", "Seán", "Zoë", "José", "Renée", "Chloé", "Björn", "Søren", "Ngọc", "Thảo",
    "Rosa", "Diego", "Lucía", "Mateo", "Ana", "Carlos", "Elena", "Nikolai", "Katarina", "Ivan",
    "Grace", "Joshua", "Hannah", "Benjamin", "Lily", "Jacob", "Georgia", "Ryan", "Jessica", "Adam",
    "Rebecca", "Luke", "Sarah", "Michael", "Laura", "David", "Rachel", "Andrew", "Kate", "Peter",
    "Aroha", "Tama", "Mere", "Wiremu", "Anika", "Rohan", "Kavya", "Ishaan", "Tariq", "Leila",
)

LAST_NAMES = (
    "Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Johnson", "White", "Martin",
    "Anderson", "Thompson", "Nguyen", "Thomas", "Walker", "Harris", "Lee", "Ryan", "Robinson",
    "Kelly", "King", "Davis", "Wright", "Evans", "Roberts", "Green", "Hall", "Wood", "Jackson",
    "Clarke", "Patel", "Khan", "Singh", "Chen", "Wang", "Li", "Zhang", "Tanaka", "Sato",
    "O'Brien", "O'Connor", "Murphy", "McDonald", "MacKenzie", "Fitzgerald", "Müller", "Schäfer",
    "García", "Martínez", "López", "Hernández", "Rossi", "Russo", "Ferrari", "Novak", "Kowalski",
    "Ivanova", "Petrov", "Haddad", "Nasser", "Okafor", "Mensah", "Dubois", "Lefèvre", "Nielsen",
    "Larsen", "Johansson", "Andersson", "Ngata", "Parata", "Te Whare", "Campbell", "Stewart",
    "Morrison", "Ross", "Hughes", "Edwards", "Turner", "Cooper", "Ward", "Morris", "Price",
    "Bennett", "Gray", "Cook", "Bailey", "Bell", "Murray", "Hunter", "Fraser", "Mitchell",
)

BUSINESS_WORDS = (
    "Harbour", "Summit", "Bluegum", "Ironbark", "Coastal", "Northside", "Riverbend", "Granite",
    "Evergreen", "Silverline", "Redwood", "Meridian", "Pinnacle", "Horizon", "Sunrise", "Kestrel",
    "Banksia", "Wattle", "Lighthouse", "Copperfield", "Orchard", "Quarry", "Juniper", "Falcon",
    "Saltbush", "Driftwood", "Keystone", "Beacon", "Maple", "Cedar", "Atlas", "Nimbus", "Vertex",
    "Tandem", "Lumen", "Cobalt", "Sapphire", "Emerald", "Willow", "Thistle", "Magpie", "Pelican",
    "Kookaburra", "Tui", "Kauri", "Totara", "Rimu", "Highland", "Lakeside", "Brookfield",
)

BUSINESS_KINDS = (
    "Plumbing", "Electrical", "Dental", "Physio", "Cafe", "Bakery", "Builders", "Landscaping",
    "Logistics", "Consulting", "Design", "Media", "Motors", "Medical", "Legal", "Vets",
    "Hospitality", "Retail", "Farms", "Vineyards", "Engineering", "Software", "Studios",
    "Property", "Investments", "Holdings", "Tiling", "Painting", "Cleaning", "Fitness",
)

BUSINESS_SUFFIXES = ("Pty Ltd", "Ltd", "Limited", "Group", "& Co", "Partners", "Trust", "")

FIRM_NAMES = (
    ("Harbour & Co Accountants", "harbourco.example"),
    ("Ledgerline Advisory", "ledgerline.example"),
    ("Summit Tax & Accounting", "summittax.example"),
    ("Bluegum Chartered Accountants", "bluegumca.example"),
    ("Northside Business Advisers", "northsideba.example"),
    ("Copperfield & Partners", "copperfield.example"),
)

STREETS = (
    "High St", "George St", "Queen St", "King St", "Victoria Rd", "Church St", "Station Rd",
    "Park Ave", "Elm St", "Bay Rd", "Main St", "Beach Rd", "Hill St", "Mill Lane", "Oak Ave",
)

CITIES = {
    "AU": (("Sydney", "NSW", "2000"), ("Melbourne", "VIC", "3000"), ("Brisbane", "QLD", "4000"),
           ("Perth", "WA", "6000"), ("Adelaide", "SA", "5000"), ("Hobart", "TAS", "7000")),
    "NZ": (("Auckland", "AUK", "1010"), ("Wellington", "WGN", "6011"),
           ("Christchurch", "CAN", "8011"), ("Dunedin", "OTA", "9016")),
    "GB": (("London", "Greater London", "EC1A 1BB"), ("Manchester", "Greater Manchester", "M1 1AE"),
           ("Leeds", "West Yorkshire", "LS1 1UR"), ("Bristol", "Bristol", "BS1 4DJ")),
    "US": (("New York", "NY", "10001"), ("Austin", "TX", "78701"), ("Denver", "CO", "80202"),
           ("Seattle", "WA", "98101"), ("Chicago", "IL", "60601"), ("Boston", "MA", "02108")),
    "CA": (("Toronto", "ON", "M5H 2N2"), ("Vancouver", "BC", "V6B 1A1"), ("Calgary", "AB", "T2P 1J9"),
           ("Ottawa", "ON", "K1P 1J1")),
}

TIME_DESCRIPTIONS = (
    "Prepared workpapers", "Reviewed source documents", "Bank reconciliations",
    "Client call", "Emails with client", "Drafted return", "Reviewed return", "Queries raised",
    "Processed adjustments", "Lodgement", "Meeting with client", "Updated ledgers",
    "Payroll reconciliation", "Year-end adjustments", "Cash flow forecast", "Research",
)

PAYMENT_INSTRUCTIONS = (
    "Please pay within 14 days of invoice",
    "Payment due 7 days from invoice date",
    "Direct deposit to the account shown below",
    None,
)
